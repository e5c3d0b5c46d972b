"""Loader of ``text-transformer`` (definition: ``schedules.tasks.generic``): byte-level language modelling.

This is the setting of batch-size warm-up in language-model pre-training (Seesaw, arXiv 2510.14717): a causal
transformer trained on next-token prediction, where the batch size grows during training. Here the tokens are
the bytes of a UTF-8 text file (vocabulary 256, no tokenizer to install), so any text works.

Data: ``file`` under the data root (checked to be UTF-8, so a binary file is refused rather than learnt).
Its last ``ceil(L test_fraction)`` bytes are the test text (a contiguous held-out tail, as nanoGPT splits),
or ``test_file`` is. Each part is cut into non-overlapping sequences of ``context`` inputs:
sequence i has inputs bytes [i c, (i + 1) c) and targets bytes [i c + 1, (i + 1) c + 1)
(``schedules.tasks.datafiles.byte_windows``: ``(L - 1) // context`` sequences; a tail shorter than a
sequence is dropped). The bytes stay uint8 on the device; inputs and targets are two views of one
(N, context + 1) tensor.

One example is one sequence: SFO counts sequences, the loss of a sequence is its mean next-byte
cross-entropy (``next_token_cross_entropy``), test accuracy is the share of bytes predicted right, and
``Task.tokens_per_example = context`` makes every record report ``tokens = SFO x context`` beside the SFO.
Model: ``schedules.tasks.models.ByteTransformer`` (``width``, ``layers``, ``heads``).
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from schedules.families._base import SpecError
from schedules.tasks.datafiles import byte_windows, split_sizes
from schedules.tasks.definition import resolve_data_path
from schedules.tasks.models import ByteTransformer
from schedules.tasks.runtime import Examples, Loss, Task, TensorData, examples, next_token_cross_entropy

NAME = "text-transformer"
VOCAB = 256
_CHUNK = 1 << 20


def _bad(option: str, value: Any, problem: str) -> SpecError:
    return SpecError(f"task.options.{option}", value, f"{problem} (task {NAME})")


def read_utf8(path: Path, option: str, value: str) -> bytes:
    """The file's bytes; ``SpecError`` naming the option when they are not UTF-8 text (with the offset of
    the first bad byte) or the file cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _bad(option, value, f"cannot be read ({type(exc).__name__})") from None
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(data), _CHUNK):  # chunks: no str copy of the whole file
        pending = len(decoder.getstate()[0])  # bytes of a character begun in the previous chunk
        try:
            decoder.decode(view[start : start + _CHUNK], final=start + _CHUNK >= len(data))
        except UnicodeDecodeError as exc:
            offset = start - pending + exc.start
            raise _bad(option, value, f"must be UTF-8 text; byte {offset} is not") from None
    return data


def windows(data: bytes, context: int) -> torch.Tensor:
    """The sequences of ``data`` as one uint8 tensor (N, ``context`` + 1): row i holds bytes
    [i context, (i + 1) context]; its first ``context`` are the inputs, its last ``context`` the targets."""
    n = byte_windows(len(data), context)
    tokens = torch.frombuffer(bytearray(data[: n * context + 1]), dtype=torch.uint8)
    return tokens.unfold(0, context + 1, context).contiguous()


def sequence_examples(
    data: bytes, context: int, device: torch.device, options: Mapping[str, Any]
) -> Examples:
    """Inputs and targets as two views of one windows tensor, on the device (moved once, so the views keep
    sharing it) or on the host for the streamed path."""
    rows = windows(data, context)
    if options["stream"]:
        return examples(rows[:, :-1], rows[:, 1:], device, options)
    rows = rows.to(device)
    return TensorData(rows[:, :-1], rows[:, 1:])


def _token_accuracy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Share of a sequence's bytes predicted right: output (B, T, V), target (B, T) -> (B,)."""
    return (output.argmax(dim=-1) == target).float().mean(dim=1)


def _byte_loss() -> Loss:
    # the targets are uint8 on the device; cross-entropy wants class indices as int64
    base = next_token_cross_entropy()
    return Loss(base.name, lambda output, target, reduction: base.fn(output, target.long(), reduction))


def load(options: Mapping[str, Any], device: torch.device) -> Task:
    context = options["context"]

    def read(option: str) -> bytes:
        value = options[option]
        path = resolve_data_path(options, value, what=option)
        if not path.is_file():
            raise _bad(option, value, "must name a file under the data root; there is none")
        return read_utf8(path, option, value)

    data = read("file")
    if options["test_file"] is not None:
        train_bytes, test_bytes = data, read("test_file")
        test_option = "test_file"
    else:
        n_train_bytes, _ = split_sizes(len(data), options["test_fraction"])
        train_bytes, test_bytes = data[:n_train_bytes], data[n_train_bytes:]
        test_option = "test_fraction"
    for option, part in (("file", train_bytes), (test_option, test_bytes)):
        if byte_windows(len(part), context) < 1:
            raise _bad(
                option,
                options[option],
                f"leaves {len(part)} bytes for the {'training' if option == 'file' else 'test'} text, fewer "
                f"than one sequence of task.options.context={context} (+1) bytes",
            )

    def build() -> torch.nn.Module:
        return ByteTransformer(context, options["width"], options["layers"], options["heads"], VOCAB).to(
            device
        )

    return Task(
        name=NAME,
        build_model=build,
        train=sequence_examples(train_bytes, context, device, options),
        test=sequence_examples(test_bytes, context, device, options),
        device=device,
        loss=_byte_loss(),
        accuracy=_token_accuracy,
        measure_chunk=options["measure_chunk"],
        grad_norm_subset=options["grad_norm_subset"],
        tokens_per_example=context,
        num_classes=VOCAB,
        options=options,
    )
