"""
# VGG16 filters, block by block

`vgg16_hed` is the VGG16 convolution stack of the HED edge detector, fine-tuned from ImageNet
VGG16. Naive gradient ascent with octaves (run some steps, grow the image by 1.2×, repeat) shows
how filters go from colours and edges in block 1 to textures and parts in block 5.
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
# ## The start image matters
#
# The same filter from noise, from uniform grey and from a photo. Gradient ascent is local: it
# amplifies whatever in the start image already excites the filter.
starts = {"noise": "noise", "grey": "grey", "photo": featgen.sample_image("coffee")}
images = [featgen.visualize(model, "block4_conv1", units=[7], method="octaves", size=80, steps=8, octaves=3,
                            start=s, progress=False).images[0] for s in starts.values()]  # fmt: skip
fig = featgen.show(images, titles=list(starts), cols=3)
