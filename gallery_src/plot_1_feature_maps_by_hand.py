"""
# Feature maps by hand

Before looking at what a trained network learned, build a convolution layer yourself. Four 4×4
kernels detect edges: a vertical one, its negative, a horizontal one and its negative.
"""

# %%
# ## The kernels, with their values
import numpy as np

import featgen

kernels = featgen.edge_kernels(4)  # (4, 4, 1, 4): kh, kw, channels in, kernels
fig = featgen.plot_kernels(kernels, titles=["vertical", "−vertical", "horizontal", "−horizontal"])

# %%
# ## Convolve a greyscale photo
#
# `apply_kernels` builds a conv layer from the kernels and returns its output before and after a
# ReLU. Before the ReLU an edge gives a positive response on one side and a negative one for the
# opposite kernel; the ReLU keeps only the positive half, which is why networks learn kernel pairs.
photo = featgen.sample_image("camera")
pre, post = featgen.apply_kernels(photo, kernels)
print("response range before ReLU:", pre.min().round(2), pre.max().round(2))
print("share of zeros after ReLU:", float((post == 0).mean()).__round__(3))

fig = featgen.show([photo] + [pre[..., i] for i in range(4)], titles=["photo", "vertical", "−vertical", "horizontal", "−horizontal"], cols=5)

# %%
# After the ReLU:
fig = featgen.show([post[..., i] for i in range(4)], titles=["vertical", "−vertical", "horizontal", "−horizontal"], cols=4)

# %%
# ## The same for a real network's first layer
#
# EfficientNet-Lite0's stem has 32 RGB kernels of 3×3 (grey is zero weight), learned on ImageNet.
# `featgen.show_image` puts a NumPy array or a PIL image on the page as it is, pixel for pixel,
# with no matplotlib figure around it.
model = featgen.load_model("efficientnet_lite0")
kernels = featgen.layer_kernels(model)
print("kernels:", kernels.shape)
featgen.show_image(featgen.kernel_tiles(kernels, scale=20, cols=8), title="conv_stem kernels")

# %%
# And what those 32 kernels make of a photo: one map per channel, each normalized to its own range.
acts = featgen.activations(model, featgen.sample_image("chelsea"), "conv_stem")
featgen.show_image(featgen.feature_map_grid(acts, colormap="viridis"), title="conv_stem feature maps")
print("activation shape (H, W, C):", acts.shape, "mean", np.round(acts.mean(), 3))
