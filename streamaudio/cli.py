"""The `streamaudio` command."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build StreamAudio-style streaming audio-interaction datasets from public corpora.")
err = Console(stderr=True, soft_wrap=True)  # long paths and tracebacks stay whole lines


@app.command()
def fixtures(out: Path = typer.Argument(..., help="folder to write the stand-in corpora into"),
             seed: int = typer.Option(20261126, help="fixture seed")):
    """Write small, layout-exact stand-ins of every supported corpus (offline)."""
    from .fixtures import write_all

    summary = write_all(out, seed)
    for corpus, s in summary.items():
        err.print(f"{corpus}: {s['good']} good items, {len(s['rejects'])} planted faults")
    err.print(f"fixtures written to {out}")


@app.command()
def build(catalog: Path = typer.Option(..., help="catalog YAML (see manifests/demo.yaml)"),
          out: Optional[Path] = typer.Option(None, help="output dataset folder (required unless --plan-only)"),
          data_root: Optional[Path] = typer.Option(None, help="the catalog's ${data_root}: the folder holding the "
                                                             "corpora (overrides STREAMAUDIO_DATA_ROOT and vars)"),
          plan_only: bool = typer.Option(False, "--plan-only", help="scan sources and plan a sample of episodes, "
                                         "render nothing: report per sub-task episodes, hours and corpora; "
                                         "sources not on disk are listed as missing"),
          plan_sample: int = typer.Option(16, help="--plan-only: episodes planned per sub-task and split (0: all)"),
          report: Optional[Path] = typer.Option(None, help="--plan-only: also write the report as JSON here"),
          ray_address: Optional[str] = typer.Option(None, help="Ray cluster to join ('auto' for an existing one); "
                                                              "default: start a local Ray"),
          num_cpus: Optional[int] = typer.Option(None, help="CPUs for a local Ray (default: all)"),
          resume: bool = typer.Option(True, help="reuse shards an earlier run of the same catalog finished"),
          cache_dir: Optional[Path] = typer.Option(None, help="content-addressed cache shared by builds "
                                                            "(default: catalog's cache_dir, else <out parent>/.streamaudio-cache)"),
          llm_base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint for the writers "
                                                               "(key from OPENAI_API_KEY); default: offline rules"),
          llm_model: Optional[str] = typer.Option(None, help="model name at that endpoint"),
          tts: Optional[str] = typer.Option(None, help="TTS backend: espeak (default) or openai"),
          tts_base_url: Optional[str] = typer.Option(None, help="openai TTS: speech endpoint base URL"),
          tts_model: Optional[str] = typer.Option(None, help="openai TTS: model"),
          tts_voice: Optional[str] = typer.Option(None, help="openai TTS: voice, or a comma list picked per source group"),
          allow_fallback: bool = typer.Option(False, help="exit 0 even when an LLM/TTS endpoint failed past its "
                                                           "retries (items rejected, tables offline)"),
          progress: bool = typer.Option(True, help="show progress bars")):
    """Build a dataset: source stages, tables, planning, rendering, labelling, shards, card.

    Exit codes: 0 ok; 2 bad catalog, recipe, layout or setting, or a busy OUT; 3 a sub-task
    crossed its reject-rate gate; 4 a recipe crashed (its traceback is printed); 5 an LLM/TTS
    endpoint failed past its retries (unless --allow-fallback). With 3 and 5 the dataset is written.
    With --plan-only: 0 with the report (missing sources and blocked sub-tasks included), 2 for
    a bad catalog, 4 for a recipe crash."""
    from .build.builder import (BuildError, EndpointFallbackError, RecipeCrashError, RejectGateError,
                                build as run_build)
    from .build.catalog import CatalogError
    from .parallel import RayConnectError
    from .sources import LayoutError

    variables = {"data_root": str(data_root.resolve())} if data_root else None
    if plan_only:
        return _plan_only(catalog, out, variables, plan_sample, report, ray_address=ray_address, num_cpus=num_cpus,
                          show_progress=progress, cache_dir=cache_dir,
                          llm={"base_url": llm_base_url, "model": llm_model},
                          tts={"backend": tts, "base_url": tts_base_url, "model": tts_model, "voice": tts_voice})
    if out is None:
        err.print("error: --out is required (unless --plan-only)", markup=False, highlight=False)
        raise typer.Exit(2)
    try:
        b = run_build(catalog, out, variables=variables, ray_address=ray_address, num_cpus=num_cpus, resume=resume,
                      show_progress=progress, cache_dir=cache_dir,
                      llm={"base_url": llm_base_url, "model": llm_model},
                      tts={"backend": tts, "base_url": tts_base_url, "model": tts_model, "voice": tts_voice},
                      allow_fallback=allow_fallback)
    except EndpointFallbackError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(5)
    except RejectGateError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(3)
    except RecipeCrashError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(4)
    except (BuildError, CatalogError, LayoutError, RayConnectError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)
    e = b["episodes"]
    by = b["rejects"]["by_stage"]
    inputs = sum(v for k, v in by.items() if k not in ("plan", "render", "label", "curate"))
    err.print(f"built {out}: {e['written']} episodes ({b['hours']:.3f} h) in {len(b['subtasks'])} sub-tasks; "
              f"rejected: {e['rejected']} episodes, {inputs} inputs, {by.get('curate', 0)} scenario drafts "
              f"(see rejects.parquet)")


def _plan_only(catalog: Path, out: Optional[Path], variables: Optional[dict], sample: int, report: Optional[Path],
               **kw) -> None:
    """`build --plan-only`: the plan report on stdout (and as JSON in ``report``)."""
    from .build.builder import BuildError, RecipeCrashError, plan_catalog
    from .build.catalog import CatalogError
    from .build.estimate import format_plan
    from .parallel import RayConnectError
    from .sources import LayoutError

    try:
        r = plan_catalog(catalog, variables, sample=sample, out=out, **kw)
    except RecipeCrashError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(4)
    except (BuildError, CatalogError, LayoutError, RayConnectError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(r, indent=2) + "\n")
    print(format_plan(r))


@app.command()
def validate(out: Path = typer.Argument(..., help="a built dataset folder"),
             no_audio: bool = typer.Option(False, "--no-audio", help="skip decoding audio")):
    """Re-check a built dataset against episode format v2; exit 1 on any violation."""
    from .audit.validate import validate as run_validate

    rep = run_validate(out, decode_audio=not no_audio)
    if rep.ok:
        err.print(f"[green]ok[/green]: {rep.episodes} episodes in {rep.shards} shards, {rep.seconds / 3600:.3f} h")
        return
    err.print(f"[red]{len(rep.problems)} problem(s)[/red] in {out}:")
    for p in rep.problems[:200]:
        err.print(f"  - {p}", markup=False, highlight=False)
    if len(rep.problems) > 200:
        err.print(f"  ... and {len(rep.problems) - 200} more")
    raise typer.Exit(1)


@app.command()
def audit(dataset: Path = typer.Argument(..., metavar="OUT", help="a built dataset folder"),
          report: Optional[Path] = typer.Option(None, "--out", help="also write the report as JSON here"),
          subtask: list[str] = typer.Option([], help="only these sub-tasks (repeatable; default: all)"),
          seed: int = typer.Option(0, help="seed of the episode folds and the bootstrap"),
          max_auc: Optional[float] = typer.Option(None, help="exit 1 if a sub-task's AUC is above this")):
    """Join-artifact audit: can the acoustics of the quiet between words and turns (no foreground
    word or event active) predict that a reply is due within 2 chunks? ROC AUC on held-out
    episodes per sub-task, with a 95% bootstrap interval over episodes; 0.5 = no cue."""
    from .audit.joins import AuditError, audit_dataset, format_table

    try:
        rep = audit_dataset(dataset, subtasks=subtask or None, seed=seed)
    except AuditError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)
    print(format_table(rep))
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(rep.to_dict(), indent=2) + "\n")
    over = [st for st, s in rep.subtasks.items() if max_auc is not None and s.auc is not None and s.auc > max_auc]
    if over:
        err.print(f"[red]AUC above {max_auc}[/red]: {', '.join(over)}")
        raise typer.Exit(1)


@app.command()
def manifest(corpus: str = typer.Option(..., help="a registered corpus (`streamaudio corpora` lists them)"),
             root: Path = typer.Option(..., help="the corpus folder"),
             out: Path = typer.Option(..., help="clip manifest to write (.parquet)")):
    """Scan one corpus into a clip manifest; rejects go next to it as .rejects.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .registry import RegistryError
    from .sources import REJECT_SCHEMA, LayoutError, get_adapter, write_manifest

    try:
        res = write_manifest(get_adapter(corpus), root, out)
    except (LayoutError, RegistryError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2)
    pq.write_table(pa.Table.from_pylist(res.rejects, REJECT_SCHEMA), out.with_suffix(".rejects.parquet"))
    err.print(json.dumps({"seen": res.seen, "used": res.used, "rejected": res.rejected}))


@app.command()
def align(clips: Path = typer.Option(..., help="clip manifest (.parquet) with id, path, offset_s, duration_s, text, language"),
          out: Path = typer.Option(..., help="aligned manifest to write; failures go to <out stem>.rejects.parquet"),
          backend: str = typer.Option("pocketsphinx", help="pocketsphinx (CPU, English) or ctc (wav2vec2 CTC)"),
          model_dir: Optional[Path] = typer.Option(None, help="ctc: local Wav2Vec2ForCTC folder"),
          cache_dir: Optional[Path] = typer.Option(None, help="alignment cache (default: <out folder>/.streamaudio-cache)"),
          ray_address: Optional[str] = typer.Option(None, help="Ray cluster to join ('auto'); default: local Ray"),
          num_cpus: Optional[int] = typer.Option(None, help="CPUs for a local Ray"),
          actors: Optional[int] = typer.Option(None, help="aligner actors (default: one per CPU; one per GPU for ctc)"),
          gpus_per_actor: float = typer.Option(0.0, help="GPUs per actor, fractions allowed (ctc)"),
          progress: bool = typer.Option(True, help="show a progress bar")):
    """Add word timings to every clip (resumable: a rerun skips clips already aligned)."""
    import pyarrow.parquet as pq

    from .align.stage import BACKENDS, align_manifest
    from .progress import progress_bar

    if backend not in BACKENDS:
        err.print(f"[red]error:[/red] unknown backend {backend!r}; choose one of {BACKENDS}")
        raise typer.Exit(2)
    if backend == "ctc" and not model_dir:
        err.print("[red]error:[/red] --backend ctc needs --model-dir")
        raise typer.Exit(2)
    if not clips.is_file():
        err.print(f"[red]error:[/red] {clips} not found")
        raise typer.Exit(2)
    _ray(ray_address, num_cpus)
    total = pq.read_metadata(clips).num_rows
    with progress_bar("align", total, progress) as advance:
        try:
            res = align_manifest(clips, out, backend, model_dir=str(model_dir) if model_dir else None,
                                 cache_dir=str(cache_dir or out.parent / ".streamaudio-cache"), actors=actors,
                                 gpus_per_actor=gpus_per_actor, progress=advance)
        except (ValueError, FileNotFoundError) as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
    err.print(json.dumps(res))


@app.command("asr-check")
def asr_check(clips: Path = typer.Option(..., help="clip manifest (.parquet) with id, path, offset_s, duration_s, text, language"),
              out: Path = typer.Option(..., help="manifest to write: the input plus asr_text, wer, asr_reason"),
              ray_address: Optional[str] = typer.Option(None, help="Ray cluster to join ('auto'); default: local Ray"),
              num_cpus: Optional[int] = typer.Option(None, help="CPUs for a local Ray"),
              progress: bool = typer.Option(True, help="show a progress bar")):
    """Decode speech with pocketsphinx and record its WER against the transcript."""
    import pyarrow.parquet as pq

    from .progress import progress_bar
    from .speech.asr_check import check_manifest

    if not clips.is_file():
        err.print(f"[red]error:[/red] {clips} not found")
        raise typer.Exit(2)
    _ray(ray_address, num_cpus)
    with progress_bar("asr-check", pq.read_metadata(clips).num_rows, progress) as advance:
        res = check_manifest(clips, out, progress=advance)
    err.print(json.dumps(res))


@app.command()
def devserver(port: int = typer.Option(8008, help="port on 127.0.0.1"),
              slow_s: float = typer.Option(2.0, help="delay of the 'slow' fault"),
              latency_ms: float = typer.Option(0.0, help="delay of every answer (a model's think time)")):
    """Serve a local OpenAI-compatible endpoint (chat completions with JSON Schema, audio speech) for trials."""
    import time

    from .text.devserver import DevServer

    srv = DevServer(port=port, slow_s=slow_s)
    srv.latency_s = latency_ms / 1000
    srv.start()
    err.print(f"serving {srv.base_url} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()


@app.command()
def rerender(out: Path = typer.Argument(..., help="a built dataset folder (its OUT.work/plans beside it)"),
             id: str = typer.Option(..., "--id", help="episode id, e.g. asr_utterance-train-000003"),
             write: Optional[Path] = typer.Option(None, help="also write the re-rendered audio to this .flac")):
    """Render one episode again from its stored plan and compare it with the shard; exit 1 if it differs."""
    from .audit.rerender import RerenderError, rerender as run_rerender

    try:
        res = run_rerender(out, id)
    except RerenderError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)
    if write:
        write.write_bytes(res.flac)
    if res.identical:
        err.print(f"[green]identical[/green]: {id} re-rendered from its plan matches the shard byte for byte")
        return
    err.print(f"[red]differs[/red]: {id}: {', '.join(res.differences)}")
    raise typer.Exit(1)


@app.command()
def estimate(catalog: Path = typer.Argument(..., help="the catalog to estimate (e.g. a full-size one)"),
             from_build: Path = typer.Option(..., "--from", help="a finished build (its folder or build.json) to take rates from"),
             source_clips: list[str] = typer.Option([], help="NAME=N: a source's size, where the reference's is not it"),
             ctc_gpu_realtime: Optional[float] = typer.Option(None, help="CTC alignment speed on your GPU: audio seconds per GPU second"),
             as_json: bool = typer.Option(False, "--json", help="print JSON")):
    """Hours, episodes, storage, CPU core-hours and GPU-hours of a build, scaled from a measured one."""
    from .build.catalog import CatalogError
    from .build.estimate import EstimateError, estimate as run_estimate, format_estimate

    try:
        sizes = {k: int(v) for k, v in (x.split("=", 1) for x in source_clips)}
        e = run_estimate(catalog, from_build, sizes, ctc_gpu_realtime)
    except (CatalogError, EstimateError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)
    print(json.dumps(e, indent=2) if as_json else format_estimate(e))


@app.command()
def corpora():
    """List the registered corpus adapters: name, kind, layout."""
    from .sources import ADAPTERS

    for name, cls in ADAPTERS.items():
        print(f"{name:<14} {cls.kind:<7} v{cls.version}  {cls.expected_layout}")


@app.command()
def recipes(recipe_dir: list[Path] = typer.Option([], "--recipe-dir", help="extra recipe folders")):
    """List the registered recipes: sub-task, ability, pools and tables."""
    from .plan import load_recipes

    for st, r in load_recipes(tuple(p.resolve() for p in recipe_dir)).items():
        pools = ", ".join(f"{p}:{'/'.join(s.kinds)}{'+' + '+'.join(s.requires) if s.requires else ''}"
                          for p, s in r.pool_specs().items())
        print(f"{st:<24} {r.ability:<22} v{r.version}  pools: {pools}  tables: {', '.join(r.tables) or '-'}")


@app.command("catalog-schema")
def catalog_schema():
    """Print the complete catalog JSON Schema (corpora, stages and sub-tasks filled in)."""
    from .build.catalog import catalog_schema as schema

    print(json.dumps(schema(), indent=2))


# `streamaudio policy decide`: the proactive sound policy over the AudioSet ontology
from .text.sound_policy import add_policy_cli  # noqa: E402

add_policy_cli(app)


def _ray(address: Optional[str], num_cpus: Optional[int]) -> None:
    from .parallel import RayConnectError, init_ray

    try:
        init_ray(address, num_cpus)
    except RayConnectError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
