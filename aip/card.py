"""What an export folder says about its student: the ecosystem's fields in ``config.json`` and the model card.

``config.json`` carries, next to aip's own keys, the fields timm (``architecture``, ``num_classes``,
``label_names``, ``pretrained_cfg``) and Hugging Face (``model_type``, ``architectures``, ``id2label``,
``label2id``) read. ``README.md`` is a :class:`huggingface_hub.ModelCard`: YAML metadata the Hub and
``ModelCard.load(path).data`` parse (license, library, pipeline tag, datasets, metrics, a ``model-index`` with
the measured accuracy), then a text that says how the student was made, what input it takes, how accurate it is
and where it is not to be trusted. Nothing in the card names a path of the exporting machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LICENSE = "mit"  # the project's MIT (pyproject.toml), as the Hub spells license identifiers (lower case)
LIBRARY = "aip"
PIPELINE_TAGS = {"image": "image-classification", "video": "video-classification", "audio": "audio-classification"}


def ecosystem_fields(*, arch: str, classes: list[str], spec: dict[str, Any]) -> dict[str, Any]:
    """The timm and Hugging Face keys of ``config.json`` for a student ``arch`` over ``classes`` taking ``spec``.

    ``pretrained_cfg`` (images and clips only: timm has none for audio) describes the preprocessing *before*
    the model, as timm's ``resolve_data_config`` reads it. aip's models normalise inside (``input`` ->
    ``normalization_inside_model``), so the pipeline's own ``mean``/``std`` are 0 and 1: a timm transform
    built from this config feeds the model pixels in [0, 1], as aip does, instead of normalising twice.
    """
    fields: dict[str, Any] = {
        "architecture": arch, "num_classes": len(classes), "label_names": list(classes),
        "model_type": LIBRARY, "architectures": [arch],
        "id2label": {str(i): c for i, c in enumerate(classes)}, "label2id": {c: i for i, c in enumerate(classes)},
    }
    if spec.get("interpolation"):
        channels = spec["shape"][0]
        cfg = {"input_size": list(spec["shape"]), "interpolation": spec["interpolation"],
               "mean": [0.0] * channels, "std": [1.0] * channels, "num_classes": len(classes)}
        for key in ("crop_pct", "crop_mode"):
            if key in spec:
                cfg[key] = spec[key]
        fields["pretrained_cfg"] = cfg
    return fields


def portable(path: str | Path) -> str:
    """``path`` as it may be shown on another machine: relative to the working folder when inside it, else its
    name alone (never an absolute path of this machine)."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix() or "."
    except ValueError:
        return p.name


def _uri(uri: str) -> str:
    """A source or checkpoint as the card shows it: URLs and scheme names (``skimage:astronaut``) as they are,
    a local file by :func:`portable`."""
    if "://" in uri or (":" in uri and not Path(uri).is_absolute() and len(uri.split(":")[0]) > 1):
        return uri
    return portable(uri) if uri else "one datum"


def _teacher(recipe: dict[str, Any], spec: dict[str, Any]) -> str:
    """How the teacher came to be, and what it was trained on."""
    t, dataset = recipe["teacher"], recipe["eval"]["dataset"]
    about = f" ({spec['dataset']})" if spec.get("dataset") else ""
    kwargs = f" {json.dumps(t['kwargs'])}" if t.get("kwargs") else ""
    if t["kind"] == "train":
        return (f"`{t['arch']}`{kwargs}, trained by `aip teacher` with cross-entropy on the labelled training "
                f"split of {dataset}{about}: every labelled training example of the dataset. The teacher saw "
                "labelled data; the student saw none of it, only the teacher's outputs on views of the source")
    if t["kind"] == "pretrained":
        return (f"`{t['arch']}` with its published weights `{t.get('weights', 'DEFAULT')}` (trained by their "
                f"authors on their own labelled data, see the weights' documentation), evaluated on {dataset}")
    if t["kind"] == "hub":
        return (f"torch.hub `{t['hub_repo']}:{t['hub_entry']}`, trained by its authors (see that repository), "
                f"evaluated on {dataset}")
    return (f"`{t['arch']}`{kwargs} loaded from the checkpoint `{Path(t['checkpoint']).name}`, trained outside aip "
            f"(what on is not recorded in the run), evaluated on {dataset}")


def _input(spec: dict[str, Any]) -> list[str]:
    """The card's input section: shape, resize, colour, polarity, value range, normalisation."""
    if not spec:
        return ["- not described: this modality has no input spec; feed the model tensors as in training"]
    lo, hi = spec.get("range", [0.0, 1.0])
    lines = [f"- one {spec.get('layout', '')} tensor of shape `(batch, {', '.join(map(str, spec['shape']))})`, "
             f"{spec.get('dtype', 'float32')} in [{lo:g}, {hi:g}]"]
    if spec.get("preprocess"):
        lines.append(f"- preprocessing (as for the test split): {spec['preprocess']}")
    if spec.get("interpolation"):
        crop = f", crop_pct {spec['crop_pct']:g}" if "crop_pct" in spec else ""
        lines.append(f"- interpolation: {spec['interpolation']}{' (antialiased)' if spec.get('antialias') else ''}"
                     f"{crop}{', ' + spec['crop_mode'] if spec.get('crop_mode') else ''}")
    if spec.get("color"):
        lines.append(f"- colour: {spec['color']}")
    if spec.get("polarity"):
        lines.append(f"- pixels: {spec['polarity']}")
    for key, what in (("sample_rate", "sample rate {} Hz"), ("fps", "{:g} frames per second")):
        if key in spec:
            lines.append(f"- {what.format(spec[key])}")
    if spec.get("normalization_inside_model"):
        n = spec["normalization_inside_model"]
        lines.append(f"- the model normalises inside (mean {n['mean']}, std {n['std']}): do not normalise again")
    return lines


def _accuracy(metrics: dict[str, Any], dataset: str) -> tuple[list[str], float | None]:
    """The accuracy table and the student's top-1 (None when the run was never evaluated)."""
    rows = []
    for who in ("teacher", "student"):
        m = metrics.get(who) or {}
        if m.get("top1") is not None:
            top5 = f"{m['top5']:.2f} %" if m.get("top5") is not None else ""
            rows.append(f"| {who} | {m['top1']:.2f} % | {top5} |")
    acc = (metrics.get("student") or {}).get("top1")
    if not rows:
        return ["Not measured: the run was not evaluated (`aip eval RUN` measures it, then export again)."], None
    where = f"the {metrics.get('dataset', dataset)} test split"
    agree = metrics.get("agreement", {}).get("top1")
    tail = [f"\nThe student agrees with the teacher's top class on {agree:.2f} % of the test inputs."] \
        if agree is not None else []
    return [f"Top-1 and top-5 accuracy on {where}:", "", "| model | top-1 | top-5 |", "| --- | --- | --- |",
            *rows, *tail], acc


def model_card(config: dict[str, Any], *, command: str) -> str:
    """The README.md of an export folder, as a Hugging Face model card (YAML metadata, then the text)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    r, m, spec = config["recipe"], config.get("metrics", {}), config.get("input", {})
    modality, dataset, name = config["modality"], m.get("dataset", r["eval"]["dataset"]), r.get("name", "student")
    task = PIPELINE_TAGS.get(modality)
    accuracy, acc = _accuracy(m, dataset)
    results = [EvalResult(task_type=task or f"{modality}-classification", dataset_type=dataset, dataset_name=dataset,
                          dataset_split="test", metric_type="accuracy", metric_name="top-1 accuracy",
                          metric_value=round(acc, 2))] if acc is not None else None
    data = ModelCardData(license=LICENSE, library_name=LIBRARY, pipeline_tag=task, datasets=[dataset],
                         metrics=["accuracy"], model_name=name, eval_results=results,
                         tags=["aip", "knowledge-distillation", "single-datum", modality])
    source = _uri(m.get("source") or r["source"].get("uri", ""))
    classes = ", ".join(config["classes"][:20]) + (" ..." if len(config["classes"]) > 20 else "")
    files = ", ".join(f"`{f}`" for f in config["files"])
    steps = f" for {m['steps']} steps" if m.get("steps") else ""
    text = "\n".join([
        f"# {name}: an aip student ({config['arch']})", "",
        f"{_article(modality)} {modality} classifier for {dataset}, distilled with aip (The Augmented Image Prior) "
        "from a single datum: it never saw a labelled example, only augmented views of one source, labelled by a "
        "frozen teacher.", "",
        "## How it was made", "",
        f"- source datum: `{source}`, the only input the student saw (as random augmented views)",
        f"- teacher: {_teacher(r, spec)}",
        f"- student: `{config['arch']}` {json.dumps(config['kwargs'])}, randomly initialised, trained to match the "
        f"teacher's outputs on the views{steps}",
        f"- recipe: `{name}` (resolved in `config.json`, key `recipe`)",
        f"- classes ({len(config['classes'])}): {classes}", "",
        "## Input", "", *_input(spec), "",
        "## Accuracy", "", *accuracy, "",
        "## Use it", "",
        "```python",
        "import aip",
        'student = aip.load_student("THIS_FOLDER")     # or "user/repo" on the Hugging Face Hub; eval mode',
        'print(student.predict("input-file").labels)   # top classes, most likely first',
        "```", "",
        "or `aip predict THIS_FOLDER FILE...`. Without aip, `model.safetensors` holds the state dict of the "
        "architecture above, and the ONNX/TorchScript files take a float tensor batch of the input above and "
        f"return logits. Files: {files}.", "",
        "## Limitations", "",
        f"- The accuracy above is measured on the {dataset} test split only. Inputs unlike that data (another "
        "background, framing, lighting, recording condition) are classified less well, by an amount nobody "
        "measured.",
        *([f"- Pixel polarity matters: the training images are {spec['polarity']}. The model does not check: a "
           "picture of the other polarity gets a confident, wrong class."] if spec.get("color") == "grayscale"
          and spec.get("polarity") else []),
        f"- It knows only its {len(config['classes'])} classes: every input, even one of none of them, gets one of "
        "them, often with a high probability. The probabilities are not calibrated.",
        "- It learnt from one datum through a teacher: it inherits the teacher's errors and biases, and is below "
        "the teacher's accuracy.",
        "- Inputs must be prepared as in *Input*; other sizes, value ranges or normalisations give wrong answers.",
        "",
        f"Made by `{command}` with aip {config['aip_version']}.", "",
    ])
    # the card's text is not a template: built here, it is parsed (and so checked) by ModelCard itself
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}"))


def _article(word: str) -> str:
    return "An" if word[:1].lower() in "aeiou" else "A"
