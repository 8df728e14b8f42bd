"""Score an ensemble of independently trained students (Uninformed Students, Bergmann et al. CVPR 2020).

    python benchmarks/rescore_ensemble.py --run-roots runs/s13n/seed0,runs/s13n/seed1 \
        --datasets kolektorsdd,elpv/mono,elpv/poly,synthetic-grass --model reduced_student

Each ``--run-roots`` entry is a ``bench_quality.py`` run root holding the same model trained
with a different ``train.seed`` (student initialisation and batch order; the teacher, its
channel standardisation and the validation split are the same). No training here: the
students are combined after the fact, the level normalisation refit on the validation
images as ``rescore_parts.py`` does. Rules, per compared level, with t the teacher's
(standardised) features and s_1..s_M the students' outputs:

- ``single-<k>``: student k alone (its quality row at these epochs);
- ``mean-output``: d(t, μ), μ = mean_i s_i (the paper's regression error e, Sec. 3.3);
- ``mean-distance``: mean_i d(t, s_i) = d(t, μ) + mean over channels of Var_i(s_i), i.e. e + v
  unnormalised (an identity for the mean-over-channels MSE);
- ``mean-output+variance``: the paper's score: e and the predictive variance v each
  normalised by their own validation statistics (here: the project's per-level quantile
  normalisation), then summed (Sec. 3.3, "the anomaly score ... ẽ + ṽ");
- ``model.students=M``: the same students loaded into one ``model.students: M`` model, the
  product's code path for the previous rule (the two rows must agree).

JSON to ``benchmarks/results/<--name>.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import claim_result_or_exit, write_result  # noqa: E402
from bench_quality import SHARED, load_test  # noqa: E402
from rescore_parts import data_path, rescore, validation_images  # noqa: E402

RULES = ("mean-output", "mean-distance", "mean-output+variance")


def ensemble_scorer(models: list, rule: str):
    """models[0] with its student's compared outputs replaced by the ensemble ``rule``'s level maps."""
    from inspector.models.base import SingleTeacherModel, level_shapes
    from inspector.models.common import LevelNormalization

    class Ensemble(SingleTeacherModel):
        def level_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
            x = self.network_input(images)
            with torch.no_grad():
                teacher = self.teacher_features(x)
            outs = [[o[i] for i in self.compare] for o in (s(x) for s in self.ensemble)]
            maps, var_maps = [], []
            for level, t in enumerate(teacher):
                s = torch.stack([o[level].float() for o in outs])  # (M, N, C, h, w)
                mu = s.mean(dim=0)
                if rule == "mean-distance":
                    maps.append(torch.stack([self.distance(t, si) for si in s]).mean(dim=0))
                else:
                    maps.append(self.distance(t, mu))
                var_maps.append(s.var(dim=0, unbiased=False).mean(dim=1, keepdim=True))
            return self.level_norm(maps + var_maps if rule == "mean-output+variance" else maps)

        def named_level_maps(self, images):
            return dict(zip(self.ensemble_names, self.level_maps(images)))

    first = models[0]
    model = Ensemble(first.config, first.teacher, first.student, first.teacher_pool, first.map_combination,
                     compare=first.level_names)
    model.load_state_dict(first.state_dict())
    model.ensemble = nn.ModuleList([m.student for m in models])
    names = list(first.level_names)
    if rule == "mean-output+variance":
        strides = [first.teacher.feature_info[i].stride * first.teacher_pool[i] for i in first.compare]
        model.level_norm = LevelNormalization(2 * len(names), level_shapes(first.config, strides * 2))
        names += [f"{n}/var" for n in names]
    model.ensemble_names = names
    model.level_names = tuple(names)
    return model.eval()


def model_ensemble(models: list):
    """The same students as one ``model.students: M`` model (the product's code path: should equal the paper rule)."""
    from dataclasses import replace

    from inspector.models.registry import build_model

    first = models[0]
    model = build_model(replace(first.config, students=len(models), teacher_weights="random"))
    state = {k: v for k, v in first.state_dict().items() if not k.startswith("level_norm.")}
    for i, other in enumerate(models[1:]):
        state.update({f"extra_students.{i}.{k}": v for k, v in other.student.state_dict().items()})
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("level_norm.") for k in missing):
        raise RuntimeError(f"ensemble weights do not fit: {missing + unexpected}")
    return model.eval()


def main(argv: list[str] | None = None) -> Path:
    from inspector.training.checkpoint import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-roots", required=True, help="comma list of bench_quality.py run roots (one per seed)")
    ap.add_argument("--datasets", default="kolektorsdd,elpv/mono,elpv/poly,synthetic-grass")
    ap.add_argument("--model", default="reduced_student")
    ap.add_argument("--data-root", type=Path, default=SHARED)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--name", default="rescore-ensemble")
    args = ap.parse_args(argv)
    claim_result_or_exit(args.name, args.out)  # before the work: a user's file at the name is kept
    torch.set_num_threads(1)
    roots = [Path(r) for r in args.run_roots.split(",")]
    results = []
    for name in args.datasets.split(","):
        data = data_path(roots[0], args.data_root, name)
        loaded = [load_model(r / name.replace("/", "_") / args.model) for r in roots]
        models = [m for m, _, _ in loaded]
        config = loaded[0][1]
        test = load_test(data, tuple(config.model.image_size), config.data.resize)
        val = validation_images(config, data)
        variants = [(f"single-{k}", m) for k, m in enumerate(models)]
        variants += [(rule, ensemble_scorer(models, rule)) for rule in RULES]
        variants.append((f"model.students={len(models)}", model_ensemble(models)))
        for variant, model in variants:
            row = rescore(model, val, test)
            results.append({"dataset": name, "model": args.model, "variant": variant, **row})
            levels = " ".join(f"{k} {v:.3f}" for k, v in row["level_image_auroc"].items())
            print(f"{name:16} {variant:22} img {row['image_auroc']:.3f} px {row['pixel_auroc'] or 0:.3f} "
                  f"| {levels} | {row['cpu_s']} cpu-s", flush=True)
    path = write_result(args.name, {"run_roots": [str(r) for r in roots], "rules": RULES, "rows": results},
                        args.out)
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
