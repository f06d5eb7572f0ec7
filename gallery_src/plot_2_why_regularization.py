"""
# Why regularization matters

Gradient ascent on the pixels (the classic Keras tutorial) finds images that excite a unit, but
they are full of high-frequency patterns. The Lucid/Distill recipe adds ingredients that push the
optimization towards natural-looking images. Here we add them one at a time and measure two
things: the activation reached and the share of spectral power above half the Nyquist frequency.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import featgen
from featgen.vis import high_frequency_share

model = featgen.load_model("efficientnet_lite0")
layer, units, size = "blocks.4", [0, 1, 2, 3], 96

# %%
# ## Naive against regularized, same units
naive = featgen.visualize(model, layer, units=units, method="naive", size=size, steps=30, progress=False)
reg = featgen.visualize(model, layer, units=units, method="regularized", size=size, steps=64, progress=False)
fig = featgen.show(list(naive.images) + list(reg.images), titles=[f"naive {u}" for u in units] + [f"regularized {u}" for u in units], cols=4)

# %%
# ## The ablation: one ingredient at a time
steps = 48
variants = {
    "pixel": dict(param="pixel", decorrelate=False, transforms="none", steps=steps),
    "+ Fourier": dict(param="fourier", decorrelate=False, transforms="none", steps=steps),
    "+ decorrelation": dict(param="fourier", decorrelate=True, transforms="none", steps=steps),
    "+ transforms": dict(param="fourier", decorrelate=True, transforms="lucid", steps=steps),
    "+ more steps": dict(param="fourier", decorrelate=True, transforms="lucid", steps=3 * steps),
}
rows = {}
for name, kw in variants.items():
    r = featgen.visualize(model, layer, units=units, method="regularized", size=size, progress=False, **kw)
    rows[name] = (r.images[0], float(r.final_activation.mean()), float(high_frequency_share(r.images).mean()))
    print(f"{name:<16} activation {rows[name][1]:7.2f}   high-frequency share {rows[name][2]:.3f}")

fig = featgen.show([v[0] for v in rows.values()], titles=list(rows), cols=5)

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3))
a.bar(list(rows), [v[1] for v in rows.values()], color="#3f51b5")
a.set_title("mean activation reached")
b.bar(list(rows), [v[2] for v in rows.values()], color="#e91e63")
b.set_title("high-frequency power share")
for ax in (a, b):
    ax.tick_params(axis="x", rotation=30)
fig.tight_layout()
print("naive high-frequency share:", np.round(high_frequency_share(naive.images).mean(), 3))
