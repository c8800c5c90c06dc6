"""Data of the paper's experiments (spec §5). Each generator returns (X, y) as float64 tensors.

Every generator draws from its own ``torch.Generator`` seeded with ``seed``, on the CPU: the same seed
gives the same data on every machine, and training and test sets are drawn with different seeds.
"""

from __future__ import annotations

import torch

from .activations import Activation, get_activation
from .errors import InvalidType, check_positive_int

__all__ = ["random_labels", "quadratic_teacher", "axis_xor"]


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidType(f"seed must be an integer; got {type(seed).__name__} {seed!r}.")
    return torch.Generator().manual_seed(seed)


def random_labels(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp 1 (spec §5.2): x_a ~ N(0, I_d) and labels y_a ~ Uniform[−½, ½], independent of x."""
    n, d = check_positive_int("n", n), check_positive_int("d", d)
    gen = _generator(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.rand(n, generator=gen, dtype=torch.float64) - 0.5
    return X, y


def quadratic_teacher(
    n: int,
    d: int,
    m_teacher: int = 5,
    seed: int = 0,
    *,
    teacher_seed: int = 0,
    activation: str | Activation = "relu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp 2 (spec §5.3): x ~ N(0, I_d), y = f*(x) = (1/m*) Σ_i c*_i σ(xᵀW*_i x / d).

    The teacher is a shallow net with quadratic embedding and m* = ``m_teacher`` neurons; c*_i Rademacher and
    W*_i ∈ R^{d×d} with N(0, 1) entries (the student's initial law; the paper's is not recovered). The
    teacher depends on ``teacher_seed`` only, so training and test sets (different ``seed``) share it.
    """
    n, d = check_positive_int("n", n), check_positive_int("d", d)
    m_teacher = check_positive_int("m_teacher", m_teacher)
    act = get_activation(activation)
    tgen = _generator(teacher_seed)
    c_star = torch.randint(0, 2, (m_teacher,), generator=tgen).to(torch.float64) * 2 - 1
    W_star = torch.randn(m_teacher, d, d, generator=tgen, dtype=torch.float64)
    X = torch.randn(n, d, generator=_generator(seed), dtype=torch.float64)
    h = torch.einsum("na,iab,nb->ni", X, W_star, X) / d
    return X, act(h) @ c_star / m_teacher


def axis_xor(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp 3 (Appendix I.3, spec §5.4): (x_1, x_2, y) uniform on {(±1, 0, +1), (0, ±1, −1)},
    x_3..x_d i.i.d. Uniform[−1, 1]; so y = x_1² − x_2² (a 45°-rotated XOR). Needs d ≥ 2."""
    n, d = check_positive_int("n", n), check_positive_int("d", d, minimum=2)
    gen = _generator(seed)
    corners = torch.tensor([[1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], [0.0, 1.0, -1.0], [0.0, -1.0, -1.0]],
                           dtype=torch.float64)
    pick = torch.randint(0, 4, (n,), generator=gen)
    rest = torch.rand(n, d - 2, generator=gen, dtype=torch.float64) * 2 - 1
    X = torch.cat([corners[pick, :2], rest], dim=1)
    return X, corners[pick, 2].clone()
