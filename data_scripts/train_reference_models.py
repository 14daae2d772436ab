"""Train the reference models shipped in pcfilter_lib/weights/, reproducibly, and record how.

    python data_scripts/train_reference_models.py --target pointnet
    python data_scripts/train_reference_models.py --target pointnet2
    python data_scripts/train_reference_models.py --target dgcnn
    python data_scripts/train_reference_models.py --target kpconv
    python data_scripts/train_reference_models.py --target unet
    python data_scripts/train_reference_models.py --target pointfilter
    python data_scripts/train_reference_models.py --target neighbourfilter
    python data_scripts/train_reference_models.py --target punet
    python data_scripts/train_reference_models.py --target yovo
    python data_scripts/train_reference_models.py --target sceneimages
    python data_scripts/train_reference_models.py --target scenecolumn
    python data_scripts/train_reference_models.py --target sceneunet
    python data_scripts/train_reference_models.py --target sceneunetimages
    python data_scripts/train_reference_models.py --target sceneunetboth
    python data_scripts/train_reference_models.py --target scenepoints
    python data_scripts/train_reference_models.py --target completion
    python data_scripts/train_reference_models.py --target pointnetoldclasses
    python data_scripts/train_reference_models.py --target pointnetscratchscans10
    python data_scripts/train_reference_models.py --target pointnetscratchscans100
    python data_scripts/train_reference_models.py --target pointnetscratchnewclasses100
    python data_scripts/train_reference_models.py --target pointnettransferscans10
    python data_scripts/train_reference_models.py --target pointnettransferscans100
    python data_scripts/train_reference_models.py --target pointnettransfernewclasses100
    python data_scripts/train_reference_models.py --target representations
    python data_scripts/train_reference_models.py --target representationshares
    python data_scripts/train_reference_models.py --target unetlossbce
    python data_scripts/train_reference_models.py --target unetlossweightedbce
    python data_scripts/train_reference_models.py --target unetlossfocal
    python data_scripts/train_reference_models.py --target unetlossdice
    python data_scripts/train_reference_models.py --target sceneunetpower000
    python data_scripts/train_reference_models.py --target sceneunetpower050
    python data_scripts/train_reference_models.py --target sceneunetpower100
    python data_scripts/train_reference_models.py --target octree
    python data_scripts/train_reference_models.py --target sparsescenes
    PCFILTER_FAST=1 python data_scripts/train_reference_models.py --target pointnet --out /tmp/w
    python data_scripts/train_reference_models.py --target unet --channels original --out DIR

Each target runs one recipe of `pcfilter_lib.recipes` and writes `<name>.keras` (the neighbour filter:
`<name>.npz`, its network in NumPy) and its model card `<name>.json` beside it
(`pcfilter_lib.io.model_cards.ModelCard`): the data it was trained on (generator, version, seed and
the sha256 of the data set's manifest), the exact command, the settings, the validation and test
metrics, the time it took and the model's size. The four classifiers (PointNet, PointNet++, DGCNN, KPConv)
learn ModelNet10 with one recipe from the data folder: the real data set if `<data
folder>/ModelNet10` exists, otherwise the procedural stand-in (generated if missing). The U-Net and
the point filter learn from the mixed simulated scans: bins, boards and fruit, each scan with its own
scanner (made if missing); the neighbour filter from those and a second mixed set at 320x240. The
PU-Net upsampler learns from patches of the true surfaces of bins, boards and fruit, at the point
density of the default 640x480 scanner's scans (made if missing). YOVO learns to turn one image of a
procedural ModelNet10 shape into its 32^3 occupancy grid (the images and grids are made if missing). The
scene image network (chapter 8's 2D stream) learns to label the pixels of the full-size chapter's scene
set (made if missing). Chapter 8's 3D networks are trained exactly as the chapter would train them, at
its budget and with the scene set's seed, so that the full-size chapter loads them instead: the
sliding-window column network, the 3D U-Net on geometry, the U-Net on the 2D network's back-projected
features and the U-Net on both (these two read the features of the scene image network in `--out`, or
the shipped one), the point network on the scenes' measured points (`scenepoints`), and section 8b's
shape-completion network on its set of scanned objects. Chapter 4's
practical pretrains PointNet on the first five classes of ModelNet10 at the chapter's budget; its
network is shipped the same way (`pointnetoldclasses`), and so are the chapter's baselines trained from
scratch: on a tenth and on all of the scanned clouds, and on the practical's new classes
(`pointnetscratch...`), and the networks its two transfer strategies leave on the same tasks: the new head
and the fine-tuned network of each, two files per target (`pointnettransfer...`; the new classes' start
from the shipped `pointnetoldclasses`). Chapter 2's six networks on three representations of the same
meshes (VoxNet, PointNet and the multi-view CNN on 1, 3, 6 and 12 views) are trained together at its
budget (`representations`); its data-share study trains VoxNet and the 12-view CNN again on 10%, 25% and
50% of those meshes, each for the gradient steps of the run on all of them (`representationshares`;
the runs on all of them are the `representations` ones). Chapter 3's four U-Nets, one per loss, learn
from its synthetic scratch images
(`unetloss...`), and chapter 8's exercise on the class weights trains the U-Net on geometry at three
weight powers with half the chapter's epochs and chunks (`sceneunetpower...`). Section 7c's two
autoencoders of 64^3 grids of procedural shapes, the octree-generating decoder and the dense one,
are trained together at its budget (`octree`). Section 8c's submanifold sparse U-Net at chapter 8's
resolution and at twice it, and the dense U-Net at twice it, are trained on the chapter's scenes
(fused again at twice the resolution, made if missing) at the section's budget (`sparsescenes`).
This script reads the mode (`PCFILTER_FAST`) and hands each recipe its `FULL` or `FAST` settings; in
fast mode the default output is `<data folder>/weights_fast`, so a quick trial never replaces the
shipped weights.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

from pcfilter_lib import config, runtime
from pcfilter_lib.io.model_cards import SHIPPED_TARGETS, WEIGHTS

TARGETS = tuple(dict.fromkeys(SHIPPED_TARGETS.values()))  # pointnet ... sceneimages, scenecolumn ... completion
# Chapter 8's 3D networks: target -> the network (or the U-Net's input) it trains.
SCENE_NETWORKS = {"scenecolumn": "column", "sceneunet": "unet", "sceneunetimages": "images", "sceneunetboth": "both"}
# Targets whose seed is their data set's (the chapter's), not --seed.
WEIGHT_POWER_TARGETS = {"sceneunetpower000": 0.0, "sceneunetpower050": 0.5, "sceneunetpower100": 1.0}
RECIPE_SEEDED = (*SCENE_NETWORKS, *WEIGHT_POWER_TARGETS, "scenepoints", "completion", "representations",
                 "representationshares", "octree", "sparsescenes")


def train(target: str, out: Path, seed: int, channels: str | None = None):
    """Run the recipe of ``target`` at the size the mode asks for; return its model card. ``channels``
    picks the U-Net's input channel set (its recipe's own by default)."""
    # The recipes import Keras: only after runtime.setup has muted TensorFlow's start-up logs.
    from pcfilter_lib.recipes import (
        classifiers,
        image_to_voxels,
        neighbour_filter,
        octree_generation,
        point_filter,
        representations,
        scene_images,
        scene_points,
        scene_segmentation,
        segmentation_losses,
        shape_completion,
        sparse_scenes,
        transfer,
        unet_filter,
        upsampling,
    )

    if target in classifiers.ARCHITECTURES:
        settings = config.choose(full=classifiers.FULL, fast=classifiers.FAST)[target]
        return classifiers.train_reference_classifier(out, config.data_dir(), settings, seed=seed)
    if target == "unet":
        return unet_filter.train_reference_filter(out, config.data_dir(),
                                                  config.choose(full=unet_filter.FULL, fast=unet_filter.FAST),
                                                  seed=seed, channels=channels or unet_filter.UNET["channels"])
    if target == "yovo":
        settings = config.choose(full=image_to_voxels.FULL, fast=image_to_voxels.FAST)
        return image_to_voxels.train_reference_yovo(out, config.data_dir(), settings, seed=seed)
    if target == "sceneimages":
        settings = config.choose(full=scene_images.REFERENCE, fast=scene_images.FAST)
        recipe = config.choose(full=scene_images.seg.CHAPTER_FULL, fast=scene_images.seg.FAST)
        return scene_images.train_reference_image_network(out, config.data_dir(), recipe, settings, seed=seed)
    if target in SCENE_NETWORKS:
        recipe = config.choose(full=scene_segmentation.CHAPTER_FULL, fast=scene_segmentation.FAST)
        which = SCENE_NETWORKS[target]
        if which in scene_images.SHIPPED_UNETS:
            image = out / scene_images.SHIPPED.name
            return scene_images.train_reference_scene_unet(out, config.data_dir(), which, recipe,
                                                           image if image.is_file() else scene_images.SHIPPED)
        return scene_segmentation.train_reference_scene_network(out, config.data_dir(), which, recipe)
    if target == "scenepoints":
        recipe = config.choose(full=scene_segmentation.CHAPTER_FULL, fast=scene_segmentation.FAST)
        budget = config.choose(full=scene_points.FULL, fast=scene_points.FAST)
        return scene_points.train_reference_point_network(out, config.data_dir(), recipe, budget)
    if target == "pointnetoldclasses":
        settings = config.choose(full=transfer.CHAPTER, fast=transfer.FAST)
        return transfer.train_reference_old_classes(out, config.data_dir(), settings,
                                                    config.choose(full="full", fast="fast"), seed=seed)
    if target.startswith("pointnetscratch"):
        task, percent = re.fullmatch(r"pointnetscratch([a-z]+)(\d+)", target).groups()
        settings = config.choose(full=transfer.CHAPTER, fast=transfer.FAST)
        return transfer.train_reference_scratch(out, config.data_dir(), task, int(percent) / 100, settings,
                                                config.choose(full="full", fast="fast"), seed=seed)
    if target.startswith("pointnettransfer"):
        task, percent = re.fullmatch(r"pointnettransfer([a-z]+)(\d+)", target).groups()
        settings = config.choose(full=transfer.CHAPTER, fast=transfer.FAST)
        path = classifiers.SHIPPED["pointnet"]
        pretrained = (path, lambda: classifiers.build_from_weights(path)) if task == "scans" else None
        return transfer.train_reference_transfer(out, config.data_dir(), task, int(percent) / 100, pretrained,
                                                 settings, config.choose(full="full", fast="fast"), seed=seed)
    if target == "representations":
        recipe = config.choose(full=representations.CHAPTER, fast=representations.FAST)
        return representations.train_reference(out, config.data_dir(), recipe, config.choose(full="full", fast="fast"))
    if target == "representationshares":
        recipe = config.choose(full=representations.CHAPTER, fast=representations.FAST)
        study = config.choose(full=representations.SHARES, fast=representations.SHARES_FAST)
        return representations.train_share_reference(out, config.data_dir(), recipe, study,
                                                     config.choose(full="full", fast="fast"))
    if target in WEIGHT_POWER_TARGETS:
        recipe = config.choose(full=scene_segmentation.CHAPTER_FULL, fast=scene_segmentation.FAST)
        return scene_segmentation.train_reference_weight_power(out, config.data_dir(), WEIGHT_POWER_TARGETS[target],
                                                               recipe)
    if target.startswith("unetloss"):
        name = next(name for name, key in segmentation_losses.KEYS.items() if f"unetloss{key}" == target)
        recipe = config.choose(full=segmentation_losses.CHAPTER, fast=segmentation_losses.FAST)
        return segmentation_losses.train_reference(out, name, recipe, seed=seed)
    if target == "completion":
        recipe = config.choose(full=shape_completion.FULL, fast=shape_completion.FAST)
        return shape_completion.train_reference_completion(out, config.data_dir(), recipe)
    if target == "octree":
        return octree_generation.train_reference_octree(
            out, config.choose(full=octree_generation.FULL, fast=octree_generation.FAST))
    if target == "sparsescenes":
        return sparse_scenes.train_reference_sparse_scenes(
            out, config.data_dir(), config.choose(full=scene_segmentation.CHAPTER_FULL, fast=scene_segmentation.FAST),
            config.choose(full=sparse_scenes.FULL, fast=sparse_scenes.FAST))
    if target == "neighbourfilter":
        settings = config.choose(full=neighbour_filter.FULL, fast=neighbour_filter.FAST)
        return neighbour_filter.train_reference_neighbour_filter(out, config.data_dir(), settings, seed=seed)
    if target == "punet":
        settings = config.choose(full=upsampling.FULL, fast=upsampling.FAST)
        return upsampling.train_reference_upsampler(out, config.data_dir(), settings, seed=seed)
    settings = config.choose(full=point_filter.FULL, fast=point_filter.FAST)
    return point_filter.train_reference_point_filter(out, config.data_dir(), settings, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=TARGETS, required=True, help="which reference model to train")
    default = config.choose(full=WEIGHTS, fast=config.data_dir() / "weights_fast")
    parser.add_argument("--out", type=Path, default=default, help=f"output folder (default: {default})")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--channels", choices=("geometric", "original"),
                        help="the U-Net's input channels (default: geometric); 'original' trains the ablation, "
                             "best with its own --out")
    args = parser.parse_args(argv)
    if args.channels and args.target != "unet":
        parser.error("--channels applies to --target unet only")
    if args.seed and args.target in RECIPE_SEEDED:
        parser.error(f"--target {args.target} trains with the seed of the chapter's data set; --seed does not apply")
    runtime.setup(seed=args.seed)
    try:
        cards = train(args.target, args.out, args.seed, args.channels)
    except (ValueError, OSError) as error:
        print(f"train_reference_models: {error}", file=sys.stderr)
        return 1
    for card in cards if isinstance(cards, list) else [cards]:  # a target may train several networks
        card.command = "python data_scripts/train_reference_models.py " + shlex.join(sys.argv[1:] if argv is None
                                                                                    else argv)
        path = card.write(args.out / Path(card.model).with_suffix(".json"))
        score = ", ".join(f"{k} {card.test[k]:.4f}" for k in ("accuracy", "mean_iou", "chamfer", "pixel_accuracy")
                          if k in card.test)
        print(f"{args.target}: test {score}; {card.training_seconds:.0f} s of training; wrote {args.out / card.model} "
              f"and {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
