"""Dissecting Adam P4 = DeepOBS ``tolstoi_char_rnn``: a character-level LSTM on War and Peace."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from adamlab.problems.base import Protocol, register
from adamlab.problems.options import check_int
from adamlab.problems.supervised import COMMON_OPTIONS, DatasetProblem, cross_entropy


class CharRNN(nn.Module):
    """Embedding (vocab -> 128) -> 2-layer LSTM(128) with dropout 0.2 between layers -> dense to vocab.

    ``forward(ids [B, T]) -> logits [B, T, vocab]``, from a zero initial state.
    """

    def __init__(self, vocab_size: int, hidden: int = 128, layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, dropout=dropout, batch_first=True)
        self.dense = nn.Linear(hidden, vocab_size)

    def forward(self, ids: Tensor) -> Tensor:
        out, _ = self.lstm(self.embedding(ids))
        return self.dense(out)


@register
class TolstoiCharRNN(DatasetProblem):
    """Balles & Hennig 2018, P4 (DeepOBS ``tolstoi_char_rnn``): 2 x LSTM-128 char model.

    The text (``adamlab.data`` ids; vocabulary from ``adamlab.data.tolstoi_vocabulary()``) is cut
    into non-overlapping sequences of ``seq_len`` (50) characters with next-character targets;
    minibatches of 50 sequences, shuffled each epoch. Loss: mean per-character cross-entropy.
    Deviation from DeepOBS: DeepOBS carries the LSTM state across consecutive batches of 50
    parallel text streams; here every sequence starts from a zero state, so batches are
    exchangeable (per-sample gradients are well defined). Budget: 200 epochs (DeepOBS),
    at the nominal 1,045 batches per epoch. ``evaluate`` uses at most ``eval_size`` sequences.
    """

    name: ClassVar[str] = "tolstoi.char_rnn"
    description: ClassVar[str] = "War and Peace char-RNN, 2 x LSTM-128 (Dissecting Adam P4, DeepOBS)"
    dataset: ClassVar[str] = "tolstoi"
    protocol = Protocol(
        batch_size=50, steps=200 * 1045, eval_every=1045, lr_schedule="constant",
        source="Balles & Hennig 2018, P4; DeepOBS tolstoi_char_rnn (seq 50, batch 50), 200 epochs",
    )
    default_options: ClassVar[dict[str, Any] | None] = {**COMMON_OPTIONS, "eval_size": 2000, "seq_len": 50}
    criterion = staticmethod(cross_entropy)
    stochastic_forward: ClassVar[bool] = True
    eval_batch_size: ClassVar[int] = 200

    def validate_options(self) -> None:
        check_int("seq_len", self.options["seq_len"], low=1)
        self._vocab_size: int | None = None

    def prepare(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        length = int(self.options["seq_len"])
        n = int(inputs.shape[0]) // length
        if n == 0:
            raise ValueError(f"seq_len={length} is longer than the text ({inputs.shape[0]} characters)")
        return inputs[: n * length].reshape(n, length), targets[: n * length].reshape(n, length)

    def vocab_size(self) -> int:
        """Size of the fixed tolstoi vocabulary of :mod:`adamlab.data` (read once per problem)."""
        if self._vocab_size is None:
            from adamlab.data import tolstoi_vocabulary

            self._vocab_size = len(tolstoi_vocabulary(self.root))
        return self._vocab_size

    def build_model(self) -> nn.Module:
        return CharRNN(self.vocab_size())
