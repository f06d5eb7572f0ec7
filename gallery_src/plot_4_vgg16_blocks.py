"""
# VGG16 filters, block by block

`vgg16_hed` is the VGG16 convolution stack of the HED edge detector, fine-tuned from ImageNet
VGG16. Naive gradient ascent with octaves (run some steps, grow the image by 1.2×, repeat) shows
how filters go from colours, stripes and edges in blocks 1 and 2 to larger, stranger patterns in
block 3, and where this small budget (80 px, 8 steps per octave) runs out: in blocks 4 and 5 most
tiles stay close to their start noise.
"""

# %%
import featgen

model = featgen.load_model("vgg16_hed")
layers = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
grids = []
for layer in layers:
    r = featgen.visualize(model, layer, units=range(4), method="octaves", size=80, steps=8, octaves=3, progress=False)
    grids.append(featgen.grid(r.images, cols=2, margin=2))
    print(f"{layer}: activation {r.start_activation.mean():.1f} → {r.final_activation.mean():.1f}")
fig = featgen.show(grids, titles=layers, cols=5)

# %%
# The printed activations say why. Block 5's filters are silent on the noise the ascent starts from
# (mean activation 0.0: the ReLU after each convolution is off), so their gradient is zero and plain
# ascent barely starts; only a filter that already fires somewhere gets a picture. Deep filters need
# more steps and a way through silent ReLUs: the `"regularized"` method redirects their gradients
# for its first steps (see *Why regularization matters* and the galleries).

# %%
# ## The start image matters
#
# The same filter from noise, from uniform grey and from a photo. Gradient ascent is local: it
# amplifies whatever in the start image already excites the filter.
starts = {"noise": "noise", "grey": "grey", "photo": featgen.sample_image("coffee")}
images = [featgen.visualize(model, "block4_conv1", units=[7], method="octaves", size=80, steps=8, octaves=3,
                            start=s, progress=False).images[0] for s in starts.values()]  # fmt: skip
fig = featgen.show(images, titles=list(starts), cols=3)
