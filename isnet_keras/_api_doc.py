"""Writes `docs/api.md`: one entry per public name, with its signature and
the summary of its docstring.

The names come from the package itself: every name of `isnet_keras` (its
`_EXPORTS` table) and the public names of the subpackages `losses`,
`metrics` and `data` (their `__all__`, or, where a module has none, the
functions and classes it defines whose names do not start with `_`).
Importing them needs neither data files nor a network.

Usage:

    python -m isnet_keras._api_doc          # Rewrites docs/api.md.
    python -m isnet_keras._api_doc --check  # Exit 1 if docs/api.md is stale.
"""

import argparse
import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
REGENERATE_COMMAND = "python -m isnet_keras._api_doc"
SUBPACKAGES = ("losses", "metrics", "data", "hub")
# Longest value shown for a constant; longer ones are summarised.
MAX_VALUE_CHARS = 100
# Longer signatures are written one parameter per line.
MAX_LINE_CHARS = 79

HEADER = f"""# API reference

One entry per public name: its signature and the summary of its docstring.
The full docstrings (arguments, return values, examples) are in the code,
e.g. `help(isnet_keras.build_isnet)`.

Generated from the package itself by `{REGENERATE_COMMAND}`; do not
edit by hand. `tests/test_api_doc.py` fails when this file is out of date.
"""


def top_level_names():
    """Returns the sorted names of `isnet_keras` that are not subpackages.

    Example:

    >>> "build_isnet" in top_level_names()
    True
    """
    import isnet_keras

    return sorted(
        name for name, module in isnet_keras._EXPORTS.items()
        if module is not None
    )


def public_names(module):
    """Returns the sorted public names of `module`.

    Args:
        module: a module object.

    Returns:
        `module.__all__` when defined; otherwise the functions and classes
        defined in `module` whose names do not start with `_`.
    """
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module.__name__
        ]
    return sorted(names)


def summary(obj):
    """Returns the first paragraph of `obj`'s own docstring, on one line.

    Example:

    >>> def f():
    ...     '''Adds one.
    ...
    ...     More text.'''
    >>> summary(f)
    'Adds one.'
    """
    doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
    if not doc:
        return "(No docstring.)"
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(line.strip() for line in paragraph.splitlines())


class _ShortName:
    """Stands for an annotation; its repr is the bare type name."""

    def __init__(self, annotation):
        self.text = getattr(annotation, "__qualname__", None) or repr(
            annotation)

    def __repr__(self):
        return self.text


def _short_annotations(signature):
    """`signature` with bare type names (`ImageSet`, not a module path) and
    no return annotation."""
    parameters = [
        parameter if parameter.annotation is parameter.empty
        else parameter.replace(annotation=_ShortName(parameter.annotation))
        for parameter in signature.parameters.values()
    ]
    return signature.replace(
        parameters=parameters, return_annotation=inspect.Signature.empty
    )


def _class_signature(cls):
    """The constructor's signature, without `self`."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    catch_all = signature is not None and [
        parameter.kind for parameter in signature.parameters.values()
    ] == [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]
    if signature is None or catch_all:
        init = inspect.signature(cls.__init__)
        signature = init.replace(
            parameters=list(init.parameters.values())[1:]
        )
    return signature


def _wrapped(name, signature):
    """`name(parameters)`, one parameter per line when too long."""
    text = f"{name}{signature}"
    if len(text) <= MAX_LINE_CHARS or not signature.parameters:
        return text
    kinds = inspect.Parameter
    lines, previous = [], None
    for parameter in signature.parameters.values():
        if previous is kinds.POSITIONAL_ONLY and (
                parameter.kind is not kinds.POSITIONAL_ONLY):
            lines.append("    /,")
        if parameter.kind is kinds.KEYWORD_ONLY and previous not in (
                kinds.KEYWORD_ONLY, kinds.VAR_POSITIONAL):
            lines.append("    *,")
        lines.append(f"    {parameter},")
        previous = parameter.kind
    if previous is kinds.POSITIONAL_ONLY:
        lines.append("    /,")
    return f"{name}(\n" + "\n".join(lines) + "\n)"


def signature_text(name, obj):
    """Returns `name(parameters)` for a callable, or `name = value`.

    Signatures longer than 79 characters get one parameter per line.
    Object addresses (`at 0x...`) are dropped so that the text does not
    change from one run to the next.

    Example:

    >>> signature_text("pair", lambda a, b=2: None)
    'pair(a, b=2)'
    >>> signature_text("SIZES", (1, 2))
    'SIZES = (1, 2)'
    """
    if inspect.isclass(obj):
        text = _wrapped(name, _short_annotations(_class_signature(obj)))
    elif callable(obj):
        text = _wrapped(name, _short_annotations(inspect.signature(obj)))
    else:
        value = repr(obj)
        if len(value) > MAX_VALUE_CHARS:
            kinds = sorted({type(item).__name__ for item in obj})
            value = (f"<{type(obj).__name__} of {len(obj)} "
                     f"{' or '.join(kinds)}>")
        text = f"{name} = {value}"
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _entry(qualified_name, name, obj):
    if inspect.isclass(obj) or callable(obj):
        description = summary(obj)
    else:
        description = "Constant."
    return (
        f"### `{qualified_name}`\n\n"
        f"```python\n{signature_text(name, obj)}\n```\n\n"
        f"{textwrap.fill(description, MAX_LINE_CHARS)}\n"
    )


def render():
    """Returns the text of `docs/api.md`."""
    import isnet_keras

    sections = [HEADER]
    entries = [
        _entry(f"isnet_keras.{name}", name, getattr(isnet_keras, name))
        for name in top_level_names()
    ]
    sections.append("## `isnet_keras`\n\n" + "\n".join(entries))
    for package in SUBPACKAGES:
        module = importlib.import_module(f"isnet_keras.{package}")
        entries = [
            _entry(f"isnet_keras.{package}.{name}", name,
                   getattr(module, name))
            for name in public_names(module)
        ]
        sections.append(f"## `isnet_keras.{package}`\n\n" + "\n".join(entries))
    return "\n".join(sections)


def main(argv=None):
    """Writes `docs/api.md`, or with `--check` reports whether it is stale.

    Returns:
        int, the exit status: 0, or 1 when `--check` finds a difference.
    """
    parser = argparse.ArgumentParser(
        prog="python -m isnet_keras._api_doc", description=__doc__.split(
            "\n\n", 1)[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if the file differs")
    parser.add_argument("--out", type=Path, default=API_DOC,
                        help=f"file to write (default {API_DOC})")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else None
        if current != text:
            print(f"{args.out} is out of date; run: {REGENERATE_COMMAND}",
                  file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
