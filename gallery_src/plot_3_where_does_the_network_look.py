"""
# Where does the network look?

Class activation maps (CAMs: Grad-CAM, Grad-CAM++, Score-CAM, Ablation-CAM and their relatives)
weigh a layer's activation maps by how much they matter for one class. Every method in featgen, on
the same photo, the same layer and the same class.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

import featgen
from featgen.cam import METHODS
from featgen.cam.metrics import faithfulness
from featgen.images import resize

model = featgen.load_model("efficientnet_lite0")
photo = model.prepare(featgen.sample_image("chelsea"))[0]
target = "Egyptian cat"
print(model.classify(photo, top=3))

# %%
# ## Every method, one grid
fast = [m for m in METHODS if m != "scorecam"]  # ScoreCAM runs the network once per channel
maps = {m: featgen.cam(model, photo, m, target=target)[0] for m in fast}
maps["scorecam"] = featgen.cam(model, photo, "scorecam", layer="blocks.5", target=target)[0]
fig = featgen.show([photo] + [featgen.overlay(photo, c) for c in maps.values()], titles=["photo"] + list(maps), cols=5)

# %%
# ## LayerCAM early and late
#
# Early layers keep spatial detail, late layers know what the object is.
early = featgen.cam(model, photo, "layercam", layer="blocks.2", target=target)[0]
late = featgen.cam(model, photo, "layercam", layer="bn2", target=target)[0]
fig = featgen.show([featgen.overlay(photo, early), featgen.overlay(photo, late)], titles=["LayerCAM, blocks.2", "LayerCAM, bn2"], size=3)

# %%
# ## Faithfulness
#
# Lower deletion AUC, average drop and ROAD most-relevant-first are better; higher insertion AUC
# and ROAD least-relevant-first are better.
scores = {m: faithfulness(model, photo, c, target, steps=8) for m, c in maps.items()}
print(f"{'method':<14}{'deletion':>10}{'insertion':>11}{'avg drop %':>12}{'ROAD MoRF':>11}{'ROAD LeRF':>11}")
for m, f in scores.items():
    print(f"{m:<14}{f.deletion_auc:>10.3f}{f.insertion_auc:>11.3f}{f.average_drop:>12.1f}{f.road_morf:>11.3f}{f.road_lerf:>11.3f}")

fig, ax = plt.subplots(figsize=(8, 3))
ax.bar(list(scores), [f.insertion_auc - f.deletion_auc for f in scores.values()], color="#009688")
ax.set_title("insertion AUC − deletion AUC (higher is better)")
ax.tick_params(axis="x", rotation=30)
fig.tight_layout()

# %%
# ## Which methods tell two classes apart?
#
# A cat on the left and an espresso on the right, in one image. Asked for "Egyptian cat", a
# class-discriminative map should move to the left half; asked for "espresso", to the right. The
# titles give the map's share of mass on the correct half.
#
# EigenCAM ignores the target by design. FullGrad leans the right way, but weakly: each of its
# terms takes an absolute value, so evidence *against* the class counts as much as evidence for it,
# and the map mostly follows where the network is active at all.
cat, cup = featgen.sample_image("chelsea"), featgen.sample_image("coffee")
h = 224
left = resize(cat, (h, int(cat.shape[1] * h / cat.shape[0])))
right = resize(cup, (h, int(cup.shape[1] * h / cup.shape[0])))
pair = np.concatenate([left, right], axis=1)
split = left.shape[1]
tiles, titles = [], []
for label, side in (("Egyptian cat", "left"), ("espresso", "right")):
    for m in ("gradcam", "layercam", "guidedgradcam", "fullgrad", "eigencam"):
        c = featgen.cam(model, pair, m, target=label, size=pair.shape[:2])[0]  # at the pair's own aspect
        share = c[:, :split].sum() / c.sum()
        share = share if side == "left" else 1 - share
        tiles.append(featgen.overlay(pair, c))
        titles.append(f"{m} → {label}: {share:.1%}")
fig, axes = plt.subplots(5, 2, figsize=(11, 9.5))  # one column per target
for ax, tile, title in zip(axes.T.ravel(), tiles, titles):
    ax.imshow(tile)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
fig.tight_layout()
