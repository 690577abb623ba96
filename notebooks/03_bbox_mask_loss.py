# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The Bbox Mask Loss, term by term
#
# BoIR learns an instance embedding map e (D channels at stride 4) with three terms built from the
# ground-truth boxes (paper §3.2, Eqs. 1–4; appendix Eqs. 7–9):
#
# * **pull_in** pulls the embedding p_i at a person's center towards the *soft-masked* mean p̄_i of
#   its box (Eqs. 1, 2, 7);
# * **push_out** pushes p_i away from the mean p̄ᶜ_i of everything outside the box (Eqs. 3, 8);
# * **push_inst** pushes the people of one image away from each other (Eqs. 4, 9).
#
# We build each term by hand on a toy embedding map and check it against `boir_core.losses`, look at β and D
# (Table 7), see which pixels each term trains, act out the paper's two headline claims as small scenes (a person
# alone still gets pushed; a boxed person without keypoint labels is pushed away), run the loss on a trained
# network's embedding map, and end with three interactive explorers. How the released code computes the loss
# differently (docs/release_vs_paper.md#bbox-mask-loss), the kernel / distance choices of Table 4 and the release's
# untrainable bbox head wait in the **"Going deeper"** sections at the end.
#
# Terms and symbols: [glossary and notation in notebook 01](01_data_and_targets.ipynb#glossary).

# %%
from boir_core.course import show_course_map

show_course_map("03")

# %% [markdown]
# **After this notebook you can**
# - compute pull_in, push_out and push_inst by hand from an embedding map and the boxes, and check them against
#   the library;
# - say which pixels each term trains, and why a person alone in an image, or a person with a box but no
#   keypoint labels, still shapes the embedding;
# - predict how β and D set the loss's scale (the smallest possible push).
#
# **Prerequisites**: [notebook 01](01_data_and_targets.ipynb) (instances, their centers and boxes in output
# pixels) and [notebook 02](02_backbone_aspp_heads.ipynb) (the embedding head is one of the training-only heads);
# squared L2 distances and the Gaussian kernel exp(−x).

# %% tags=["parameters"]
size = 32  # toy map size (output pixels)
dim = 16  # toy embedding dimension D (the paper uses 128)
beta = 10.0  # Gaussian kernel scale β (Table 7: 10 is best)
noise = 0.2  # noise of the toy embeddings
checkpoint = None  # section 10's trained BoIR (with its emb head); None: the kit's default trained BoIR
input_size = None  # S_in of section 10's image (maps are S_in / 4); None: the weights' data.input_size
backbone = "hrnet_w18_small"  # Going deeper B's untrained networks (section 10's without weights); paper: hrnet_w32
search_images = 8  # SynthCrowd val images searched for section 10's picture (two overlapping people, centers apart)
work_dir = "runs/notebooks/03"  # where a small SynthCrowd is generated when data/synthcrowd is missing
num_threads = 1  # CPU threads for PyTorch (0 keeps the default)
seed = 0

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from boir_core.losses import (
    BboxMaskSettings,
    bbox_loss,
    bbox_mask_terms,
    box_masks,
    instance_pixels,
    normalize_embedding,
    pull_in,
    push_inst,
    push_out,
)
from boir_core.model import BoIR
from boir_core.viz.similarity import similarity_map
from boir_core.viz.widgets import ToyMap, explore_terms, loss_explorer, similarity_viewer, toy_embedding

if num_threads:
    torch.set_num_threads(num_threads)
torch.manual_seed(seed)
# %matplotlib inline

# %% [markdown]
# ## 1 · A toy scene
# Three people: A and B overlap, C stands alone. Each box's pixels share one random direction in
# embedding space (the front person wins where boxes overlap), the background has its own, and noise
# is added. Boxes are `xywh` in output pixels, as in a training sample. We show three embedding channels
# as RGB.

# %%
boxes = torch.tensor([[3.0, 4.0, 10.0, 18.0], [9.0, 7.0, 9.0, 17.0], [21.0, 3.0, 8.0, 14.0]], dtype=torch.float64)
centers = boxes[:, :2] + boxes[:, 2:] / 2  # stand-ins for the keypoint-mean centers
imgid = torch.zeros(len(boxes), dtype=torch.long)
emb = toy_embedding(boxes.tolist(), size=size, dim=dim, noise=noise, seed=seed)  # [D, H, W]
e = normalize_embedding(emb[None])[0]  # appendix §6: L2-normalise every pixel first


def show_boxes(ax, bxs, color="w", names="ABC"):
    """Box outlines; imshow centers pixel u at u, so pixel u's extent [u, u+1) is drawn from u − ½."""
    for k, (x, y, w, h) in enumerate(bxs.tolist()):
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, ec=color, lw=1.5))
        ax.text(x, y, names[k], color=color, va="bottom")


fig, ax = plt.subplots(figsize=(4, 4))
rgb = (e[:3].permute(1, 2, 0) - e[:3].min()) / (e[:3].max() - e[:3].min())
ax.imshow(rgb.numpy())
show_boxes(ax, boxes)
ax.set_title("toy embedding map (3 of D channels)")
plt.show()

# %% [markdown]
# ## 2 · The pixel set B_i and the instance embedding p_i
# Pixel (u, v) covers [u, u+1) × [v, v+1). A pixel is in B_i when its center (u+½, v+½) lies in the box;
# the pixel holding the box center always is, so even a box smaller than a pixel has one. p_i is e at
# the nearest pixel of the instance center (keypoint mean in real data).

# %%
H = W = size
masks = box_masks(boxes, H, W)  # [N, H, W] bool
points = instance_pixels(boxes, H, W, instance_point="center", instance_center=centers)  # (row, col)
p = torch.stack([e[:, r, c] for r, c in points.tolist()])  # [N, D]
print("pixels per box:", masks.sum((1, 2)).tolist(), " p_i at (row, col):", points.tolist())

# %% [markdown]
# ## 3 · Eq. 1: the soft mask
# s_i(u) = ψ(d(e(u), p_i)) for u ∈ B_i, with d the squared L2 distance and ψ the Gaussian kernel of
# Eqs. 8/9, exp(−β/D·‖·‖²). The weights are a *constant* in training (no gradient flows through them).
# Where A and B overlap, A's mask fades on B's pixels: that is how the loss copes with occlusion.

# %%
def soft_mask(e, p_i, mask, beta):
    d2 = ((e - p_i[:, None, None]) ** 2).sum(0)  # ‖e(u) − p_i‖² at every pixel
    return torch.exp(-beta / e.shape[0] * d2) * mask


soft = torch.stack([soft_mask(e, p[i], masks[i], beta) for i in range(len(boxes))])
fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
for i, ax in enumerate(axes):
    ax.imshow(soft[i].numpy(), vmin=0, vmax=1)
    show_boxes(ax, boxes[i:i + 1], names="ABC"[i])
    ax.plot(points[i, 1], points[i, 0], "ro")
    ax.set_title(f"s_{'ABC'[i]} (β = {beta})")
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ## 4 · Eqs. 2 and 7: the in-box pull
# p̄_i = Σ s_i·e / Σ s_i over B_i, and pull_in_i = ‖p_i − p̄_i‖²/D. We compute it by hand and compare
# with `boir_core.losses.pull_in`, which returns one value per instance.

# %%
p_bar = torch.stack([(e * soft[i]).sum((1, 2)) / soft[i].sum() for i in range(len(boxes))])
pull_by_hand = ((p - p_bar) ** 2).sum(1) / dim
paper = BboxMaskSettings(beta=beta)  # the loss's settings: the paper variant (its defaults) with this β
pull_lib = pull_in(emb[None], boxes, imgid, centers, paper)
print("pull_in by hand:", pull_by_hand.numpy().round(5), " library:", pull_lib.numpy().round(5))
assert torch.allclose(pull_by_hand, pull_lib, atol=1e-9)

# %% [markdown]
# ## 5 · Eqs. 3 and 8: the out-box push
# p̄ᶜ_i is the plain mean of e over the pixels outside B_i (other people included, labelled or not), and
# push_out_i = exp(−β/D·‖p_i − p̄ᶜ_i‖²): large while p_i looks like its surroundings.

# %%
p_out = torch.stack([e[:, ~masks[i]].mean(1) for i in range(len(boxes))])
out_by_hand = torch.exp(-beta / dim * ((p - p_out) ** 2).sum(1))
out_lib = push_out(emb[None], boxes, imgid, centers, paper)
print("push_out by hand:", out_by_hand.numpy().round(5), " library:", out_lib.numpy().round(5))
assert torch.allclose(out_by_hand, out_lib, atol=1e-9)

# %% [markdown]
# ## 6 · Eqs. 4 and 9: the cross-instance push
# Eq. 9 averages ψ over the N(N−1)/2 pairs of one image. The library reports each person's share,
# Σ_{j≠i} ψ_ij/(N−1), whose mean over the image is exactly Eq. 9.

# %%
n = len(boxes)
pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
eq9 = sum(torch.exp(-beta / dim * ((p[i] - p[j]) ** 2).sum()) for i, j in pairs) / (n * (n - 1) / 2)
inst_lib = push_inst(emb[None], boxes, imgid, centers, paper)
print(f"Eq. 9 by hand: {float(eq9):.5f}   mean of library shares: {float(inst_lib.mean()):.5f}")
assert torch.allclose(eq9, inst_lib.mean(), atol=1e-9)
terms = bbox_mask_terms(emb[None], boxes, imgid, centers, paper)
print(f"L_emb = pull_in {float(terms.loss_pull_in):.4f} + push_out {float(terms.loss_push_out):.4f}"
      f" + push_inst {float(terms.loss_push_inst):.4f} = {float(terms.loss):.4f}   (Eq. 6)")

# %% [markdown]
# ## 7 · β and D: the loss value on the toy scene, and the "loss scale drop"
# Table 7 varies β and D and reports **AP** of trained models (notebook 06 has those numbers); here we only
# look at what β and D do to the *loss value* on this toy scene. On unit vectors ‖a − b‖² ≤ 4, so
# ψ ≥ exp(−4β/D): with β = 10 and D = 128 every push is at least 0.73 and almost linear in the distance —
# the paper's appendix calls this the loss-scale drop. Smaller D makes the kernel sharper. (D = 1 is a
# special case: section 8b shows that it trains nothing.)

# %%
betas = [0.5, 1, 5, 10, 15]
dims = [1, 8, 16, 32, 64, 128]
table = np.array([[explore_terms(boxes.tolist(), BboxMaskSettings(beta=b), toy=ToyMap(size, d_, noise, seed))["total"]
                   for d_ in dims] for b in betas])
fig, ax = plt.subplots(figsize=(5, 3))
for b, row in zip(betas, table):
    ax.plot(dims, row, "o-", label=f"β = {b}")
ax.set_xscale("log", base=2)
ax.set_xlabel("D")
ax.set_ylabel("L_emb on the toy scene")
ax.set_title("loss value vs D and β (not Table 7's AP)", fontsize=9)
ax.legend(fontsize=7)
plt.show()
print("lowest possible push per pair at D = 128:", {b: round(math.exp(-4 * b / 128), 3) for b in betas})

# %% [markdown]
# **Exercise 1 · Predict before you run.** The paper's setting is D = 128, β = 10. Two people whose embeddings
# point in exactly opposite directions are as far apart as unit vectors can be. What push ψ do they still pay?
# Guess a number between 0 and 1, then compute it with the library's kernel `boir_core.losses.psi` on two such
# vectors.

# %% tags=["solution"] jupyter={"source_hidden": true}
from boir_core.losses import distance_r
from boir_core.losses import psi as kernel_psi

u = torch.nn.functional.normalize(torch.randn(128, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)),
                                  dim=0)
smallest = float(kernel_psi(distance_r(u, -u), beta=10.0, dim=128))  # ‖u − (−u)‖² = 4, the largest distance
print(f"smallest push at D = 128, β = 10: {smallest:.4f} = exp(−40/128); at this notebook's toy D = {dim}: "
      f"{float(kernel_psi(torch.tensor(4.0), beta=10.0, dim=dim)):.4f}")
assert abs(smallest - math.exp(-4 * 10 / 128)) < 1e-12 and 0.73 < smallest < 0.74

# %% [markdown]
# **Exercise 2.** Keep D = 128. How large must β be before two opposite embeddings can bring the push below ½?
# Solve exp(−4β/D) = ½ on paper, then check that the library's kernel gives ½ there.

# %% tags=["solution"] jupyter={"source_hidden": true}
beta_half = 128 * math.log(2) / 4
at_half = float(kernel_psi(torch.tensor(4.0, dtype=torch.float64), beta=beta_half, dim=128))
print(f"β = 128·ln 2 / 4 = {beta_half:.1f}: the smallest push is {at_half:.4f}; at the paper's β = 10 it cannot go "
      f"below {math.exp(-40 / 128):.2f}")
assert abs(at_half - 0.5) < 1e-12 and beta_half > 22

# %% [markdown]
# **Explorer: the kernel ψ.** Move β and D. The left panel draws the paper's ψ = exp(−β/D·r) and the release's
# soft mask exp(−β·r) (the same kernel without 1/D) over every distance two unit embeddings can have; the grey
# histogram is where two *unrelated* people's embeddings sit before training (random unit vectors in D
# channels: r ≈ 2 ± 2/√D). The right panel is the push those unrelated pairs pay. Things to try: the paper's
# β = 10, D = 128 (every pair pays at least 0.73: the loss-scale drop of Exercise 2); D = 8 (the kernel halves at
# 0.55, so a random pair already pays little); the release's kernel at any D (it halves at r = ln 2/β = 0.07:
# only near-identical embeddings count in its soft mask). (`boir_core.viz.formula_explorers.KernelExplorer`; the
# curves are the library's `psi`.)

# %%
from boir_core.viz.explorers import place
from boir_core.viz.formula_explorers import KernelExplorer

kernel_explorer = place(KernelExplorer(beta=10.0, dim=128, seed=seed))

# %% [markdown]
# ## 8 · What each term does to the embedding map: ∂L/∂e
# Training moves every pixel's embedding along −∂L/∂e(u). `boir_core.losses.term_gradients` returns the
# gradient of each term with respect to the raw map; we draw its size per pixel. The support is the point:
# **push_inst** reaches only the N pixels where p_i is read (CID's loss is just as sparse), **pull_in** only
# pixels inside boxes, and **push_out** every pixel outside each box as well: that is the "spatially rich
# supervision" of paper §3.2. (The released main configs' variant, `release-image`, has no pull term, so its pull
# gradient is zero: the cell checks that too; [Going deeper A](#going-deeper-a-paper-vs-release) has the details.)

# %%
from boir_core.losses import term_gradients

grads = term_gradients(emb[None], boxes, imgid, centers, paper)
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for ax, name in zip(axes, ("pull_in", "push_out", "push_inst")):
    ax.imshow(grads[name][0].norm(dim=0).numpy(), cmap="magma")
    show_boxes(ax, boxes)
    ax.plot(points[:, 1], points[:, 0], "c+", ms=8)
    ax.set_title(f"‖∂ {name} / ∂e(u)‖ (paper)")
    ax.set_axis_off()
plt.show()
touched = {k: grads[k][0].norm(dim=0) > 0 for k in ("pull_in", "push_out", "push_inst")}
at_points = torch.zeros(H, W, dtype=torch.bool)
at_points[points[:, 0], points[:, 1]] = True
inside_any = masks.any(0)
assert torch.equal(touched["push_inst"], at_points)  # only the p_i pixels
assert not (touched["pull_in"] & ~inside_any).any()  # nothing outside the boxes
assert touched["push_out"][~inside_any].all()  # every background pixel
print({k: f"{int(v.sum())} of {H * W} pixels" for k, v in touched.items()})
g_image = term_gradients(emb[None], boxes, imgid, settings=BboxMaskSettings(variant="release-image", beta=beta))
assert float(g_image["pull_in"].abs().max()) == 0.0 and float(g_image["push_out"].abs().max()) > 0

# %% [markdown]
# ### D = 1 trains nothing
# With one channel the L2-normalised embedding is e = x/|x| = ±1: a step function of the head's output,
# whose derivative is 0 wherever x ≠ 0. Every term of every variant therefore sends *exactly* zero gradient
# to the network, and Table 7's D = 1 row is in effect a run without the embedding loss. As Table 7 also drops
# the bbox head, **the kit reads** it as the same training as Table 4's "neither" row; the paper does not say
# which embedding loss, if any, that row used, so this is our reading, not the paper's statement. If the reading
# is right, the different AP the paper reports for the two (below) measures how much two runs of one setting can
# differ (notebook 06).

# %%
from boir_core.paper import TABLES

emb1 = toy_embedding(boxes.tolist(), size=size, dim=1, noise=noise, seed=seed)[None]
variants = ["paper", "release-instance", "release-image"]  # the paper's loss and the release's two (Going deeper A)
for v in variants:
    g1 = term_gradients(emb1, boxes, imgid, centers if v == "paper" else None, BboxMaskSettings(variant=v, beta=beta))
    print(f"D = 1, {v:16s}: max |∂L/∂x| = {max(float(g.abs().max()) for g in g1.values())}")
    assert all(float(g.abs().max()) == 0.0 for g in g1.values())
x = torch.tensor([-0.7, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
torch.nn.functional.normalize(x[:, None], dim=1).sum().backward()  # the plain normalisation, in float64
print("d(x/|x|)/dx by autograd through F.normalize:", x.grad.tolist(), "(zero up to rounding)")
ap_d1, ap_none = TABLES["7R"].row("t7_dim_1").values["AP"], TABLES["4L"].row("t4_no_bmask_no_bbox").values["AP"]
print(f"paper: D = 1 (no embedding gradient, no bbox head) {ap_d1} AP; neither loss nor head {ap_none} AP")

# %% [markdown]
# ## 9 · The paper's two headline claims, as scenes
#
# The paper argues that the Bbox Mask Loss supervises what a push *between people* cannot: (a) it acts even when
# an image holds a single person, and (b) it reaches people who have a box but no keypoint labels. Both scenes
# below are small hand-made tensors run through the library's real loss functions.
#
# ### 9a · One person alone
# **Predict before you run.** An image with exactly one person (one box). An associative-embedding push acts
# *between* people (Eq. 9 averages over pairs), so it has nothing to push. Is push_out zero too? Does it send a
# gradient to the map?

# %% tags=["solution"] jupyter={"source_hidden": true}
one_box = torch.tensor([[10.0, 6.0, 10.0, 20.0]], dtype=torch.float64)
one_center, one_id = one_box[:, :2] + one_box[:, 2:] / 2, torch.zeros(1, dtype=torch.long)
one_emb = toy_embedding(one_box.tolist(), size=size, dim=dim, noise=noise, seed=seed)[None]
one = bbox_mask_terms(one_emb, one_box, one_id, one_center, paper)
one_grads = term_gradients(one_emb, one_box, one_id, one_center, paper)
outside_one = ~box_masks(one_box, H, W)[0]
e1 = normalize_embedding(one_emb)[0]  # the same term from its definition: ψ(p, mean of e outside the box)
r1, c1 = (int(v) for v in one_center[0].flip(0))
by_hand = math.exp(-beta / dim * float(((e1[:, r1, c1] - e1[:, outside_one].mean(1)) ** 2).sum()))
print(f"one person: push_out {float(one.loss_push_out):.4f} (by hand {by_hand:.4f}), push_inst "
      f"{float(one.loss_push_inst):.1f}, pull_in {float(one.loss_pull_in):.4f}")
reached = one_grads["push_out"][0].norm(dim=0)[outside_one] > 0
print(f"push_out's gradient reaches {int(reached.sum())} of the {int(outside_one.sum())} pixels outside the box (and "
      f"p's own pixel); push_inst's reaches {int((one_grads['push_inst'][0].norm(dim=0) > 0).sum())} pixels")
assert abs(float(one.loss_push_out) - by_hand) < 1e-9 and float(one.loss_push_out) > 0
assert float(one.loss_push_inst) == 0.0 and float(one_grads["push_inst"].abs().max()) == 0.0
assert reached.all()

# %% [markdown]
# Non-zero, and it trains every background pixel: the out-box push compares the person with its *surroundings*,
# which exist whether or not anyone else is in the picture. A pairwise push (AE's or CID's contrastive loss
# between centers) has no pair and gives no signal at all here, and single-person images are common in COCO.
#
# ### 9b · A boxed person without keypoint labels
# Notebook 01's exercise 2 showed what the targets make of a person with a box but `num_keypoints` 0: no center,
# hence **no instance**: no p, no row in `instance_bbox`, so push_inst (which pushes centers apart) cannot reach
# them, and neither could CID's contrastive loss. (On COCO the ignore mask hides them from the heatmap losses; the
# embedding loss does not read it, docs/data_format.md#ignore-mask.) But their pixels lie outside the labelled
# person's box, so they are part of p̄ᶜ. Below, the labelled person A's embedding has leaked onto the
# unlabelled person U (the confusion the loss exists to undo): what does push_out do to U's pixels?

# %%
from boir_core.data.targets import TargetRules, build_targets

K_toy = 17
kpts = np.zeros((2, K_toy, 3))
kpts[0, :, 0] = np.random.default_rng(seed).uniform(5, 13, K_toy)
kpts[0, :, 1] = np.random.default_rng(seed + 1).uniform(7, 25, K_toy)
kpts[0, :, 2] = 2  # A: every keypoint labelled; U (person 1): none (num_keypoints 0)
corners = np.array([[[4, 6], [14, 6], [14, 26], [4, 26]], [[17, 5], [28, 5], [28, 27], [17, 27]]], float)
tg = build_targets(kpts, corners, np.array([100.0 ** 2, 100.0 ** 2]), size, rules=TargetRules(center_jitter=False))
a_box = torch.tensor(tg.instance_bbox, dtype=torch.float64)
a_center = torch.tensor(tg.instance_center, dtype=torch.float64)
a_id, (ra, ca) = torch.zeros(len(a_box), dtype=torch.long), tg.instance_coord[0].tolist()
print(f"instances: {len(a_box)} (A only; U is person {[i for i in range(2) if i not in tg.person_index]}, "
      f"center valid {tg.center_valid.tolist()})")
assert len(a_box) == 1 and tg.person_index.tolist() == [0]

u_box = torch.tensor([[17.0, 5.0, 11.0, 22.0]], dtype=torch.float64)  # U's box, xywh in map pixels
u_pixels = box_masks(u_box, H, W)[0] & ~box_masks(a_box, H, W)[0]
leaky = toy_embedding(torch.cat([a_box, u_box]).tolist(), size=size, dim=dim, noise=noise, seed=seed)[None]
g_leak = torch.Generator().manual_seed(seed + 1)
leaky[0][:, u_pixels] = leaky[0][:, ra, ca][:, None] + noise * torch.randn(dim, int(u_pixels.sum()), generator=g_leak,
                                                                             dtype=torch.float64)
leak_terms = bbox_mask_terms(leaky, a_box, a_id, a_center, paper)
g_out = term_gradients(leaky, a_box, a_id, a_center, paper)["push_out"][0]


def u_similarity(emb_map):
    """Cosine of A's unit embedding p_A with U's mean unit embedding, and push_out for A."""
    e_ = normalize_embedding(emb_map)[0]
    cos = float(e_[:, u_pixels].mean(1) @ e_[:, ra, ca])
    return cos, float(bbox_mask_terms(emb_map, a_box, a_id, a_center, paper).loss_push_out)


stepped = leaky.clone()
for _ in range(10):  # ten gradient steps of push_out, on U's pixels only
    g_step = term_gradients(stepped, a_box, a_id, a_center, paper)["push_out"][0]
    stepped[0][:, u_pixels] -= 1000.0 * g_step[:, u_pixels]
(cos0, out0), (cos1, out1) = u_similarity(leaky), u_similarity(stepped)
# each of U's pixels, moved against the gradient, turns away from p_A (the derivative of its cosine with p_A)
x_u = leaky[0][:, u_pixels].clone().requires_grad_(True)
p_a = normalize_embedding(leaky)[0][:, ra, ca]
(d_cos,) = torch.autograd.grad((torch.nn.functional.normalize(x_u, dim=0) * p_a[:, None]).sum(), x_u)
turning = (d_cos * -g_out[:, u_pixels]).sum(0)
all_nonzero = bool((g_out[:, u_pixels].norm(dim=0) > 0).all())
print(f"push_out gradient on U's {int(u_pixels.sum())} pixels: all non-zero {all_nonzero}; "
      f"each turns away from p_A: {bool((turning < 0).all())}")
print(f"ten steps on U's pixels: cos(p_A, U) {cos0:.3f} -> {cos1:.3f}, A's push_out {out0:.4f} -> {out1:.4f}; "
      f"push_inst {float(leak_terms.loss_push_inst):.1f} (one instance: nothing to push between)")
assert (g_out[:, u_pixels].norm(dim=0) > 0).all() and (turning < 0).all()
assert cos1 < cos0 and out1 < out0 and float(leak_terms.loss_push_inst) == 0.0

fig, axes = plt.subplots(1, 2, figsize=(8, 3.8))
for ax, emb_map, title in ((axes[0], leaky, "A's embedding leaked onto U"),
                           (axes[1], stepped, "after ten push_out steps")):
    ax.imshow(similarity_map(emb_map[0], point=(ra, ca), beta=beta).numpy(), vmin=0, vmax=1, cmap="magma")
    show_boxes(ax, torch.cat([a_box, u_box]), names="AU")
    ax.plot(ca, ra, "c+", ms=10)
    ax.set_title(f"ψ from A's center: {title}", fontsize=9)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# U has no keypoints and no instance, yet its pixels are pushed away from A: the push_out gradient moves every
# one of them away from p_A, and the right-hand picture shows A's similarity draining off U. Boxes are cheaper than
# keypoints, and this is how they pay off. (The step size is large because each pixel carries 1/|outside| of the
# out-box mean; training moves all of them together, step after step.)

# %% [markdown]
# ## 10 · On a trained network's embedding map
# The same loss on the embedding head of the kit's trained demo BoIR (`checkpoint`; by default
# `boir_core.paths.default_checkpoint("boir")`, trained on SynthCrowd with this loss) for a SynthCrowd val
# image and its ground-truth boxes: the first of `search_images` with two people whose boxes overlap but whose
# centers are apart (notebook 07's Figure 1 rule). Beside it, the *same* network with its initial weights, to
# show what training changed: untrained, all embeddings are (nearly) identical (the head starts at or near a
# constant), so every push sits at or near its maximum 1. The maps are ψ, the loss's kernel (β of the weights' config),
# from each of the two people's centers; under each, the mean over the other person's own pixels (B∖A for
# A's map, A∖B for B's): lower means less of one person's similarity leaks onto the other.

# %%
from boir_core import paths
from boir_core.config import load_config
from boir_core.engine.evaluation.runner import checkpoint_config
from boir_core.model import build_model, load_weights
from boir_core.viz import figures as fg
from boir_core.viz import similarity as vs
from boir_core.viz.scenes import keypoint_center, synthcrowd_root, val_pictures
from boir_core.viz.training import shipped_description

checkpoint = paths.existing(checkpoint, "checkpoint") if checkpoint else paths.default_checkpoint("boir")
size_override = [f"data.input_size={input_size}"] if input_size else []
if checkpoint is not None:
    net_cfg = checkpoint_config(checkpoint, None, size_override)
    print(f"trained: {shipped_description(checkpoint) or checkpoint}")
else:
    net_cfg = load_config("tiny", [f"model.backbone={backbone}", *size_override])
    print("no trained BoIR weights in this kit (`make demo` trains some): only the untrained network is shown")
net_beta = net_cfg.loss.beta
nets = {}
if checkpoint is not None:
    nets["trained"] = build_model(net_cfg, train=True, initialise=False)
    load_weights(nets["trained"], checkpoint)  # strict: the emb head must be in the file
    nets["trained"].eval()
torch.manual_seed(seed)
nets["untrained"] = build_model(net_cfg, train=True, initialise=False).train()  # batch statistics (notebook 02)

pics = val_pictures(synthcrowd_root(paths.resolve(work_dir), int(search_images), net_cfg.num_keypoints),
                    int(search_images))
pic = next((p for p in pics if fg.separated_overlapping_pair(p.boxes) is not None),
           next(p for p in pics if len(p.people) >= 2))
pair = fg.separated_overlapping_pair(pic.boxes) or fg.most_overlapping_pair(pic.boxes)
prep = fg.prepare_image(pic.image, net_cfg.data.input_size)
images = prep["image"][None]
stride = net_cfg.data.input_size / net_cfg.data.output_size  # input pixels per map pixel (4)
m = np.asarray(prep["matrix"], dtype=np.float64)
net_boxes = torch.tensor(fg.boxes_to_canvas(pic.boxes, m), dtype=torch.float32) / stride  # xywh, map pixels
net_centers = torch.tensor(np.array([m[:, :2] @ np.array(keypoint_center(a)) + m[:, 2] for a in pic.people]),
                           dtype=torch.float32) / stride  # (x, y), map pixels
coord = net_centers.floor().long().flip(1)  # (y, x)
ids = torch.zeros(len(pic.people), dtype=torch.long)
print(f"{pic.name}: {len(pic.people)} people; A = person {pair[0]}, B = person {pair[1]} (box IoU {pair[2]:.2f}); "
      f"β = {net_beta:g} (the weights' loss.beta), D = {net_cfg.model.emb_dim}")

H_net, W_net = images.shape[-2] // int(stride), images.shape[-1] // int(stride)
only_b = vs.difference_pixels(net_boxes[pair[1]].tolist(), net_boxes[pair[0]].tolist(), H_net, W_net)  # B∖A
only_a = vs.difference_pixels(net_boxes[pair[0]].tolist(), net_boxes[pair[1]].tolist(), H_net, W_net)  # A∖B
fig, axes = plt.subplots(len(nets), 3, figsize=(9.5, 3.6 * len(nets)), squeeze=False)
found = {}
for r, (label, net) in enumerate(nets.items()):
    with torch.no_grad():
        out = net.forward_train(images, coord, ids)
        t = bbox_mask_terms(out["emb"], net_boxes, ids, net_centers, BboxMaskSettings(beta=net_beta))
    net_emb = out["emb"][0]
    maps = [similarity_map(net_emb, point=tuple(coord[k].tolist()), beta=net_beta) for k in pair[:2]]
    leak = [vs.region_mean(maps[0], only_b), vs.region_mean(maps[1], only_a)]
    found[label] = (t, leak)
    print(f"{label:9s}: pull_in {float(t.loss_pull_in):.4f}, push_out {float(t.loss_push_out):.4f}, "
          f"push_inst {float(t.loss_push_inst):.4f}; ψ from A over B∖A {leak[0]:.3f}, from B over A∖B {leak[1]:.3f}")
    axes[r, 0].imshow(prep["canvas"])
    for k in [k for k in range(len(net_boxes)) if k not in pair[:2]] + list(pair[:2]):  # A and B on top
        b = net_boxes[k].tolist()
        colour = {pair[0]: "tab:blue", pair[1]: "tab:red"}.get(k, "white")
        axes[r, 0].add_patch(Rectangle((b[0] * stride, b[1] * stride), b[2] * stride, b[3] * stride, fill=False,
                                       ec=colour, lw=2.5 if k in pair[:2] else 1.0))
    axes[r, 0].set_title(f"{label}: boxes (A blue, B red)", fontsize=9)
    for c, (mp, name, k, lk) in enumerate(zip(maps, "AB", pair[:2], leak), start=1):
        axes[r, c].imshow(mp.numpy(), vmin=0, vmax=1, cmap="magma")
        show_boxes(axes[r, c], net_boxes[[pair[0], pair[1]]], color="w", names="AB")
        axes[r, c].plot(coord[k, 1], coord[k, 0], "c+", ms=10)
        axes[r, c].set_title(f"{label}: ψ from {name}'s center", fontsize=9)
        axes[r, c].set_xlabel(f"mean over the other's own pixels {lk:.2f}", fontsize=8)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
plt.show()
if "trained" in found:
    (tt, lt), (tu, lu) = found["trained"], found["untrained"]
    print(f"training moved push_inst from {float(tu.loss_push_inst):.3f} to {float(tt.loss_push_inst):.3f} and "
          f"push_out from {float(tu.loss_push_out):.3f} to {float(tt.loss_push_out):.3f} "
          f"({'lower: people further apart' if tt.loss_push_inst < tu.loss_push_inst else 'not lower'}); "
          f"the leak onto the other person went from {np.mean(lu):.3f} to {np.mean(lt):.3f}")

# %% [markdown]
# ## 11 · Explore
# **Loss explorer**: move and resize the boxes (drag one onto the other to make them overlap), change β,
# D, the variant and the kernel; the three terms and every box's soft mask update.
# **Similarity viewer**: pick a pixel and see its Gaussian-kernel similarity to the whole map
# (`boir_core.viz.similarity.similarity_map`), on a map *trained* by the Bbox Mask Loss (the map itself
# optimised for the toy boxes, `boir_core.viz.explorers.fit_embedding`).
# **Frozen embedding, moved box**: the trained map stays fixed while you move one box away from its person;
# its terms rise: a wrongly placed box is punished. Distance, kernel and the seed of the trained map are
# controls too. Widgets need a live kernel; in a static render you see each explorer's first drawing.

# %%
from boir_core.viz.explorers import FrozenEmbeddingExplorer, fit_embedding, place

explorer = place(loss_explorer(boxes=[tuple(b) for b in boxes.tolist()], size=size, dim=dim, beta=beta,
                               noise=noise, seed=seed))

# %%
trained_emb = fit_embedding(boxes.tolist(), size=size, dim=dim, beta=beta, seed=seed)
viewer = place(similarity_viewer(trained_emb, beta=beta))

# %%
frozen_explorer = place(FrozenEmbeddingExplorer(boxes.tolist(), size=size, dim=dim, beta=beta, seed=seed))


# %% [markdown]
# ## Going deeper: what the release does
#
# The released code computes the Bbox Mask Loss differently from the paper's equations, and its bbox head cannot
# train. The kit implements the paper by default and reproduces the release behind switches
# (docs/release_vs_paper.md). Nothing earlier in this notebook depends on these sections.
#
# <a id="going-deeper-a-paper-vs-release"></a>
# ### Going deeper A · Paper vs release, side by side (docs/release_vs_paper.md#formulas-side-by-side)
#
# Every piece of the loss as the paper writes it, as the released code computes it, and what the kit does
# under each value of `loss.bbox_mask_variant` (`paper` is the default; `release-instance` is the release's
# BG level 0, used by its CrowdPose finetune configs; `release-image` is BG level 1, used by every other
# released config). ψ(a, b) = exp(−β/D·‖a − b‖²); sums over d run over the D channels.
#
# Piece by piece: the paper (Eqs. 1–4, 7–9), the release (BG level 0 / level 1) and the kit (`paper` ·
# `release-instance` · `release-image`):
#
# - **where p_i is read**
#   - paper: e at the instance center
#   - release: e at (⌊(x+w)/2⌋, ⌊(y+h)/2⌋), often outside the box (bug)
#   - kit: `paper`: ⌊keypoint-mean center⌋ (`loss.instance_point=center`) or ⌊x + w/2⌋, ⌊y + h/2⌋ (`=box`) · both
#     release values: the release's point
# - **box pixels B_i**
#   - paper: "coordinates inside the box"
#   - release: columns int(x)−1 … int(x+w) (one pixel dilated, half-open, clamped); boxes under 2 px skipped
#   - kit: `paper`: pixel centers in [x, x+w] × [y, y+h], plus the center pixel · release values: the release's
# - **soft mask s_i(u)**
#   - paper: ψ(d(e(u), p_i)), ψ and d left open (Eq. 1)
#   - release: exp(−β·Σ_d (p_i − e(u))²), no 1/D; built from detached tensors; Σs < 1e-5 → p̄_i = p_i
#   - kit: `paper`: exp(−β/D·‖e(u) − p_i‖²), detached · release values: the release's
# - **in-box pull**
#   - paper: Eq. 7: (1/(D·N)) Σ_i ‖p_i − p̄_i‖²
#   - release: level 0: **½**·‖p_i − p̄_i‖²/D per instance; level 1: **none**
#   - kit: `paper`: Eq. 7 · `release-instance`: ‖p_i − p̄_i‖²/(2D) · `release-image`: 0
# - **out-box push**
#   - paper: Eq. 8: (1/N) Σ_i ψ(p_i, p̄ᶜ_i), p̄ᶜ_i = mean of e outside B_i
#   - release: level 0: **1 +** ψ(**(p_i + p̄_i)/2**, p̄ᶜ_i); level 1: none per instance — one background mean bg
#     (outside the *union* of boxes) joins the cross push
#   - kit: `paper`: Eq. 8 · `release-instance`: 1 + ψ((p_i + p̄_i)/2, p̄ᶜ_i) · `release-image`: bg in the cross push
# - **cross push**
#   - paper: Eq. 9: Σ_{i<j} ψ(p_i, p_j) / (N(N−1)/2)
#   - release: [N′/2 + Σ_{i<j} ψ(u_i, u_j)] / (N′ − 1) per image, u = {p_i} (N′ = N) or {p_i} ∪ {bg} (N′ = N + 1)
#   - kit: `paper`: Eq. 9 · release values: the release's
# - **over the batch**
#   - paper: N = people of one image (images averaged, our reading)
#   - release: Σ over images **÷ total instances** in the batch (dummies included)
#   - kit: `paper`: mean over the images where a term exists · release values: ÷ total instances
# - **weight in L (Eq. 5)**
#   - paper: 1
#   - release: 0.25, and every term ÷ the images per batch
#   - kit: `loss.weighting=paper` (1) · `loss.weighting=release` (`loss.bbox_mask_weight`, ÷ the images per batch)
#
# The cell after the next checks the release entries: the kit's per-instance values equal these formulas
# evaluated by hand from its p, p̄, p̄ᶜ, and its totals equal the loop transcription of the released code
# (`boir_core.losses.reference.bbox_mask_release_ref`).
# The released code differs in five places: p_i is read at ((x+w)/2, (y+h)/2) (often *outside* the box),
# masks are dilated by one pixel and half-open, the soft mask uses exp(−β·Σ_d) (no 1/D, very sharp), the
# AE push adds constants (N/(2(N−1)) and +1), and the main configs (BG level 1, `release-image`) drop the
# pull and per-instance push entirely: one push among box "centers" and one background mean per image.

# %%
variants = ["paper", "release-instance", "release-image"]
res = {v: explore_terms(boxes.tolist(), BboxMaskSettings(variant=v, beta=beta), toy=ToyMap(size, dim, noise, seed))
       for v in variants}
print(f"{'variant':18s} {'pull_in':>8s} {'push_out':>9s} {'push_inst':>10s} {'total':>7s}")
for v in variants:
    r = res[v]
    print(f"{v:18s} {r['pull_in']:8.4f} {r['push_out']:9.4f} {r['push_inst']:10.4f} {r['total']:7.4f}")
for kernel, distance, row in [("contrastive", "cosine", "Table 4 right, row 1"),
                              ("contrastive", "l2", "Table 4 right, row 2"),
                              ("ae", "l2", "Table 4 right, row 3 (the default)"),
                              ("ae", "cosine",
                               "not a Table 4 row: the AE kernel on the cosine distance, for comparison")]:
    t = bbox_mask_terms(emb[None], boxes, imgid, centers, BboxMaskSettings(beta=beta, kernel=kernel, distance=distance))
    print(f"paper {kernel}/{distance}: pull_in {float(t.loss_pull_in):.2e}, push_out {float(t.loss_push_out):.2e},"
          f" push_inst {float(t.loss_push_inst):.2e}   ({row})")
print("(InfoNCE with τ = 0.05 is already near 0 on this clean toy scene: its people are well separated)")

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, v in zip(axes, ["paper", "release-instance"]):
    ax.imshow(res[v]["soft_masks"].max(0), vmin=0, vmax=1)
    show_boxes(ax, boxes)
    pts = np.array(res[v]["points"])
    ax.plot(pts[:, 1], pts[:, 0], "ro")
    ax.set_title(f"{v}: soft masks and p_i")
    ax.set_axis_off()
plt.show()

# %%
from boir_core.losses.reference import bbox_mask_release_ref

rel0 = bbox_mask_terms(emb[None], boxes, imgid, settings=BboxMaskSettings(variant="release-instance", beta=beta))


def psi(a, b):
    return torch.exp(-beta / dim * ((a - b) ** 2).sum(-1))


mid = (rel0.p + rel0.p_bar) / 2
assert torch.allclose(rel0.pull_in, ((rel0.p - rel0.p_bar) ** 2).sum(-1) / (2 * dim), atol=1e-12)
assert torch.allclose(rel0.push_out, 1 + psi(mid, rel0.p_bar_out), atol=1e-12)
pair_sum = sum(psi(rel0.p[i], rel0.p[j]) for i, j in pairs)
assert torch.allclose(rel0.push_inst.sum(), (n / 2 + pair_sum) / (n - 1), atol=1e-12)  # one image: N' = N
rel1 = bbox_mask_terms(emb[None], boxes, imgid, settings=BboxMaskSettings(variant="release-image", beta=beta))
assert float(rel1.pull_in.abs().sum()) == 0.0  # level 1: no pull at all
for level, t in ((0, rel0), (1, rel1)):
    ref, _ = bbox_mask_release_ref(emb[None], boxes, imgid, level=level, beta=beta)
    print(f"release BG level {level}: kit {float(t.loss):.6f}, loop transcription of the release {float(ref):.6f}")
    assert torch.allclose(t.loss, torch.as_tensor(ref, dtype=t.loss.dtype), atol=1e-9)

# %% [markdown]
# <a id="going-deeper-b-dead-bbox-head"></a>
# ### Going deeper B · One backward pass: the released bbox head is dead
# (docs/release_vs_paper.md#bbox-head-initialisation)
# The release zero-initialises *every* conv of the bbox head, so its hidden block outputs exactly 0 and
# only the four output biases can learn: no gradient reaches the head's weights, the neck or the backbone.
# The paper-side init (`bbox_head_init="paper"`, the kit's default) zeroes only the output conv's weight,
# which gives the neck a gradient from the second step on; we show the gradient of the box loss after one
# step (a plain SGD update of the output conv first), for both, on section 10's image and boxes.

# %%
for init in ("release", "paper"):
    torch.manual_seed(seed)
    m = BoIR(num_keypoints=17, backbone=backbone, bbox_head_init=init).train()
    head = m.multihead.bbox_head
    for step in range(2):
        m.zero_grad()
        o = m.forward_train(images, coord, ids)
        loss = bbox_loss(o["bbox"], coord, ids, net_boxes)
        loss.backward()
        if step == 0:  # one SGD step on the head, so that a zero output weight can move
            with torch.no_grad():
                for prm in head.parameters():
                    if prm.grad is not None:
                        prm -= 0.1 * prm.grad
    grads = {name: (0.0 if prm.grad is None else float(prm.grad.abs().max())) for name, prm in head.named_parameters()}
    neck = max(float(prm.grad.abs().max()) for prm in m.multihead.neck.parameters() if prm.grad is not None) \
        if any(prm.grad is not None for prm in m.multihead.neck.parameters()) else 0.0
    nonzero = [k for k, v in grads.items() if v > 0]
    print(f"bbox_head_init={init!r}: box loss {float(loss):.3f}; parameters with gradient: {nonzero}; "
          f"max |grad| in the neck: {neck:.2e}")


# %% [markdown]
# ## Recap
#
# 1. The Bbox Mask Loss needs only boxes: pull_in draws the center embedding p_i towards its soft-masked box mean,
#    push_out pushes it from the mean of everything outside the box, push_inst pushes the people's p_i apart, all
#    with the kernel ψ = exp(−β/D·‖a − b‖²) on unit vectors.
# 2. push_out reaches every pixel outside each box, so a person alone in an image, and a boxed person without keypoint
#    labels, still shape the map; pairwise pushes (AE, CID's contrastive loss) reach only the centers' pixels.
# 3. β and D set the loss's scale: at D = 128, β = 10 a push never falls below exp(−40/128) ≈ 0.73, and with D = 1
#    the normalised embedding is ±1 and nothing trains.
#
# **Next**: [04 · Training](04_training.ipynb): these terms with the heatmap and box losses in one training step,
# and a whole schedule.
