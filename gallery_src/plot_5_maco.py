"""
# MACO: phase-only Fourier with a transparency map

MACO (Fel et al. 2023) fixes the image's Fourier magnitude to that of natural images (here: the
bundled sample photos) and optimizes only the phase. The accumulated input gradient says which
regions mattered: the transparency map.
"""

# %%
import numpy as np

import featgen

model = featgen.load_model("efficientnet_lite0")
r = featgen.visualize(model, "blocks.5", units=range(3), method="maco", size=96, steps=64, progress=False)
alpha_views = [img * (0.25 + 0.75 * a[..., None]) for img, a in zip(r.images, r.alpha)]
fig = featgen.show(list(r.images) + alpha_views, titles=[f"unit {u}" for u in r.units] + ["with transparency"] * 3, cols=3)
print("activation:", np.round(r.start_activation, 2), "→", np.round(r.final_activation, 2))

# %%
# ## DeepDream on a photo
#
# The same engine maximizes a whole layer: objectives compose, and the start can be any image.
from featgen.vis import objectives

photo = featgen.sample_image("astronaut")
dream = featgen.visualize(model, "blocks.3", units=[0], method="naive", size=128, steps=20, lr=4.0,
                          objective=objectives.deepdream("blocks.3"), start=photo, progress=False)  # fmt: skip
fig = featgen.show([featgen.images.resize(photo, 128, crop=True), dream.images[0]], titles=["photo", "DeepDream, blocks.3"], cols=2, size=3)
