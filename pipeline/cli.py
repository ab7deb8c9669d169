"""`imp-tfx pipeline run|compile`, `imp-tfx retrain` and `imp-tfx demo`."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Optional

# google-api-core warns on every import that Python 3.10 support is ending; TFX 1.16 pins 3.10.
warnings.filterwarnings("ignore", message="You are using a non-supported Python version",
                        category=FutureWarning)

from components.evaluator.blessing import RECALL_AT_5
from components.evaluator.blessing import ZERO_SHOT_ACCURACY
from pipeline import configs


def register(subparsers, name: str) -> None:
    {"pipeline": _register_pipeline, "retrain": _register_retrain, "demo": _register_demo}[name](
        subparsers, name)


# -- shared arguments ---------------------------------------------------------------------------------


def _add_pipeline_args(p: argparse.ArgumentParser, data_required: bool = True) -> None:
    p.add_argument("--data", required=data_required, metavar="DIR",
                   help="dataset folder of JSONL manifests + media (or of span-N/ folders)")
    p.add_argument("--root", required=True, metavar="DIR", help="pipeline root (component outputs, MLMD)")
    p.add_argument("--name", default=configs.DEFAULT_PIPELINE_NAME, help="pipeline name (default: %(default)s)")
    p.add_argument("--config", default="tiny", help="model config preset (default: %(default)s)")
    p.add_argument("--tasks", metavar="YAML", help="AGD tasks file (default: the demo data's tasks)")
    p.add_argument("--steps", type=int, default=200, help="training steps (default: %(default)s)")
    p.add_argument("--mesh", default="", help="DTensor mesh for the Trainer, e.g. batch=2,expert=4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serving-base", metavar="DIR",
                   help="TF Serving model base path the Pusher writes into "
                        "(default: ROOT/serving_model/NAME)")
    p.add_argument("--min-zero-shot-accuracy", type=float, default=0.2,
                   help="bless only above this zero-shot accuracy on every labelled task "
                        "(default: %(default)s; 10 classes = 0.1 chance)")
    p.add_argument("--min-recall-at-5", type=float, default=0.0,
                   help="bless only above this retrieval recall@5 on every pair (default: %(default)s)")
    p.add_argument("--max-regression", type=float, default=0.0,
                   help="how far the score may fall below the last blessed model's (default: %(default)s)")
    p.add_argument("--no-cache", action="store_true", help="rerun every component")
    p.add_argument("--beam-multi-processing", action="store_true",
                   help="Beam DirectRunner multi_processing with 2 workers instead of in_memory "
                        "(slower on 2 cores: see pipeline/configs.py)")


def config_from_args(args: argparse.Namespace, **overrides) -> configs.PipelineConfig:
    blessing = configs.BlessingPolicy(
        lower_bounds=((ZERO_SHOT_ACCURACY, args.min_zero_shot_accuracy),
                      (RECALL_AT_5, args.min_recall_at_5)),
        max_regression=args.max_regression)
    fields = dict(
        name=args.name, pipeline_root=args.root, data_root=args.data or "", model_config=args.config,
        tasks_file=args.tasks, train_steps=args.steps, mesh=args.mesh, seed=args.seed,
        serving_base_path=args.serving_base or "", blessing=blessing, enable_cache=not args.no_cache,
        beam_args=configs.MULTI_PROCESSING_BEAM_ARGS if args.beam_multi_processing
        else configs.LOCAL_BEAM_ARGS)
    fields.update(overrides)
    return configs.PipelineConfig(**fields)


def _add_vertex_args(p: argparse.ArgumentParser) -> None:
    v = configs.VertexConfig()
    p.add_argument("--project", default=v.project, help="GCP project")
    p.add_argument("--region", default=v.region, help="GCP region (default: %(default)s)")
    p.add_argument("--image", default=v.image, help="pipeline container image (default: %(default)s)")
    p.add_argument("--machine-type", default=v.machine_type, help="Trainer machine (default: %(default)s)")
    p.add_argument("--accelerator-type", default="", help="e.g. NVIDIA_TESLA_T4 or TPU_V3")
    p.add_argument("--accelerator-count", type=int, default=0)
    p.add_argument("--tpu-topology", default="", help="TPU VM slice topology, e.g. 2x2")
    p.add_argument("--dataflow-temp", default="", metavar="GS_URI", help="Dataflow temp/staging location")
    p.add_argument("--no-dataflow", action="store_true", help="run Beam components in their container")
    p.add_argument("--service-account", default="")
    p.add_argument("--cron", default=v.schedule_cron, help="retraining schedule (default: %(default)s)")


def vertex_from_args(args: argparse.Namespace) -> configs.VertexConfig:
    return configs.VertexConfig(
        project=args.project, region=args.region, image=args.image, machine_type=args.machine_type,
        accelerator_type=args.accelerator_type, accelerator_count=args.accelerator_count,
        tpu_topology=args.tpu_topology, use_dataflow=not args.no_dataflow,
        dataflow_temp_location=args.dataflow_temp, service_account=args.service_account,
        schedule_cron=args.cron)


# -- imp-tfx pipeline ---------------------------------------------------------------------------------


def _register_pipeline(subparsers, name: str) -> None:
    p = subparsers.add_parser(name, help="run or compile the TFX pipeline")
    sub = p.add_subparsers(dest="pipeline_command", metavar="SUBCOMMAND", required=True)
    run = sub.add_parser("run", help="run the pipeline locally (LocalDagRunner, SQLite MLMD, Beam)")
    _add_pipeline_args(run)
    run.add_argument("--span-pattern", help="ingest only the latest span, e.g. 'span-{SPAN}'")
    run.add_argument("--warm-start", action="store_true", help="train from the latest blessed model")
    run.add_argument("--dry-run", action="store_true", help="print the component graph and exit")
    run.set_defaults(handler=_pipeline_run)

    comp = sub.add_parser("compile", help="compile a KFP v2 pipeline spec for Vertex AI / Kubeflow")
    comp.add_argument("--runner", choices=["vertex"], default="vertex")
    comp.add_argument("--out", required=True, metavar="SPEC.json", help="pipeline spec file to write")
    _add_pipeline_args(comp, data_required=True)
    _add_vertex_args(comp)
    comp.add_argument("--span-pattern", default=configs.SPAN_PATTERN,
                      help="span folders under --data (default: %(default)s; '' = no spans)")
    comp.add_argument("--warm-start", action="store_true", help="the scheduled-retraining variant")
    comp.set_defaults(handler=_pipeline_compile)


def _pipeline_run(args: argparse.Namespace) -> int:
    from pipeline import local_runner
    from pipeline import pipeline as pipeline_lib

    config = config_from_args(args, span_pattern=args.span_pattern or None)
    if args.dry_run:
        print(pipeline_lib.describe(pipeline_lib.create_pipeline(config, warm_start=args.warm_start)))
        return 0
    result = local_runner.run_and_summarize(config, warm_start=args.warm_start, progress=_progress)
    print(result.describe())
    return 0


def _pipeline_compile(args: argparse.Namespace) -> int:
    from pipeline import kubeflow_v2_runner

    config = config_from_args(args, vertex=vertex_from_args(args), span_pattern=args.span_pattern or None,
                              beam_args=())
    spec = kubeflow_v2_runner.compile_pipeline(config, args.out, warm_start=args.warm_start)
    tasks = sorted(spec["pipelineSpec"]["root"]["dag"]["tasks"])
    print(f"wrote {args.out}: {len(tasks)} tasks ({', '.join(tasks)})")
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- imp-tfx retrain ----------------------------------------------------------------------------------


def _register_retrain(subparsers, name: str) -> None:
    p = subparsers.add_parser(name, help="one scheduled-retraining round on the latest data span")
    _add_pipeline_args(p)
    p.add_argument("--span-pattern", default=configs.SPAN_PATTERN,
                   help="span folders under --data (default: %(default)s)")
    p.add_argument("--cold-start", action="store_true", help="do not warm-start from the last blessed model")
    sched = p.add_argument_group("Vertex schedule (instead of a local round)")
    sched.add_argument("--schedule-vertex", action="store_true",
                       help="compile the retraining pipeline and create a Vertex pipeline job schedule")
    sched.add_argument("--spec", metavar="SPEC.json", help="where to write the compiled spec")
    sched.add_argument("--print-request", action="store_true",
                       help="print the gcloud / REST request instead of calling the Vertex API")
    _add_vertex_args(p)
    p.set_defaults(handler=_retrain)


def _retrain(args: argparse.Namespace) -> int:
    from pipeline import retraining

    if args.schedule_vertex:
        config = config_from_args(args, vertex=vertex_from_args(args), span_pattern=args.span_pattern,
                                  beam_args=())
        spec = args.spec or f"{config.name}_retraining_pipeline.json"
        print(retraining.schedule_on_vertex(config, spec, print_only=args.print_request))
        return 0
    config = config_from_args(args, span_pattern=args.span_pattern)
    result = retraining.run_round(config, warm_start=not args.cold_start, progress=_progress)
    print(result.describe())
    return 0


# -- imp-tfx demo -------------------------------------------------------------------------------------


def _register_demo(subparsers, name: str) -> None:
    from pipeline import demo

    p = subparsers.add_parser(name, help="the main job: demo data -> pipeline -> serving -> example queries")
    p.add_argument("--size", choices=sorted(demo.SIZES), default=demo.DEFAULT_SIZE,
                   help="examples / steps / model preset (default: %(default)s)")
    p.add_argument("--out", default="demo_output", metavar="DIR", help="output folder (default: %(default)s)")
    p.add_argument("--keep-serving", action="store_true",
                   help="leave `imp-tfx serve` running on REST 8501 / gRPC 8500 afterwards")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beam-multi-processing", action="store_true",
                   help="Beam DirectRunner multi_processing with 2 workers instead of in_memory")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from pipeline import demo

    return demo.run_demo(size=args.size, out=args.out, keep_serving=args.keep_serving, seed=args.seed,
                         beam_multi_processing=args.beam_multi_processing)


def main(argv: Optional[list] = None) -> int:
    from imp_tfx import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
