"""How the per-set maps of one step combine: the combinator strategy (contract §2).

Each set S that enters a step is the random affine map a_S(δ) = A_S δ + b_S with
A_S = I + s_S Ĥ_S K (weights s_S and the factor K come from :class:`rmt.Dynamics`). A
:class:`Combinator` says how those maps make one step J, b and therefore how the mean map E[J],
the second-moment operator T(M) = E[J M Jᵀ], the per-direction rates of commuting sets and the
null scalar combine:

``summed``       J = I + Σ_S s_S Ĥ_S                 (increments add)
``alternating``  J = A_F A_R                          (factors multiply, retain first)
``sam``          J = I − η Ĥ_R K,  K = I + (ρ/a) H̄_R   (summed, preconditioned; retain only)

A combinator *is* its name (a ``str``): ``dyn.combinator == "summed"`` still reads naturally, but
code that needs the algebra asks the object — its flags (:attr:`~Combinator.products`,
:attr:`~Combinator.self_adjoint`, :attr:`~Combinator.preconditioned`,
:attr:`~Combinator.takes_forget`) and methods — instead of branching on the name. Adding a
schedule means adding one subclass here and registering it in :data:`COMBINATORS`.

This module is a leaf: it imports nothing from ``rmt``; the dynamics it receives is duck-typed
(``terms``, ``step_maps``, ``mean_map``, ``K`` of :class:`rmt.Dynamics`).
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

import numpy as np

__all__ = ["Combinator", "Summed", "Alternating", "SAM", "COMBINATORS", "get_combinator"]


class Combinator(str):
    """The strategy of one schedule kind (module docstring). Instances are singletons."""

    #: the schedule name (``Schedule.schedule``)
    name: ClassVar[str] = ""
    #: J is the product of the per-set factors A_S (in order) rather than I + Σ_S (A_S − I)
    products: ClassVar[bool] = False
    #: T is self-adjoint and positive on Sym_r in the Frobenius product (contract §10.1)
    self_adjoint: ClassVar[bool] = False
    #: the step is preconditioned by K = I + (ρ/a)H̄_R ≠ I (SAM)
    preconditioned: ClassVar[bool] = False
    #: a forget set can enter the step (α > 0 is allowed)
    takes_forget: ClassVar[bool] = True

    def __new__(cls) -> "Combinator":
        return super().__new__(cls, cls.name)

    def __reduce__(self):  # pickled by name: one instance per kind in every process
        return (get_combinator, (self.name,))

    def __repr__(self) -> str:
        return f"<combinator {self.name!r}>"

    # ------------------------------------------------------------------ schedule-level factors
    def ascent(self, schedule: Any) -> float:
        """The ascent coefficient ρ/a of K = I + (ρ/a)H̄_R (0 unless preconditioned)."""
        return 0.0

    def precondition(self, schedule: Any, mean_retain: np.ndarray | None,
                     eye: np.ndarray) -> np.ndarray:
        """K on the span: I + (ρ/a)H̄_R for SAM, the identity ``eye`` otherwise."""
        return eye

    def kappa(self, schedule: Any, m: Any) -> Any:
        """The factor K takes on a direction of retain eigenvalue ``m`` (scalar or array):
        1 + (ρ/a)m for SAM, ones otherwise."""
        return np.ones_like(m, dtype=float) if np.ndim(m) else 1.0

    # ------------------------------------------------------------------ first moments and steps
    def mean_map(self, eye: np.ndarray, terms: Sequence[Any], step_maps: dict,
                 K: np.ndarray) -> np.ndarray:
        """E[J] on the span from the per-set mean factors ``step_maps`` (name → I + s H̄ K)."""
        return eye + sum(t.weight * t.mean for t in terms) @ K

    def compose(self, J: np.ndarray, b: np.ndarray, A: np.ndarray, bt: np.ndarray,
                eye: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(J, b) after the next set's affine map (A, bt) joins the step built so far."""
        return J + (A - eye), b + bt

    def chain(self, x: Any, a: Any) -> Any:
        """The null scalar after the next set's increment ``a`` (scalars or broadcast arrays):
        x + a when increments add, (1 + a)·x when factors multiply."""
        return x + a

    def groups(self, terms: Sequence[Any]) -> list[list[Any]]:
        """The independent random maps of one step, in order, as lists of set terms."""
        return [list(terms)]

    def nonlinear_step(self, w: np.ndarray, parts: Sequence[tuple[float, Callable]],
                       ascent_gradient: Callable | None = None, ascent: float = 0.0
                       ) -> np.ndarray:
        """One step of the nonlinear iteration: ``parts`` are (s_S, g_S) in step order, g_S(v)
        the set's batch gradient at v (the linearisation is J ∋ s_S Ĥ_S); summed:
        w + Σ_S s_S g_S(w)."""
        step = np.zeros_like(w)
        for s, grad in parts:
            step += s * grad(w)
        return w + step

    # ------------------------------------------------------------------ second moments
    def rates(self, moms: Sequence[tuple], kappa: Any) -> np.ndarray:
        """E[j²] per commuting direction from per-term moments (term, m, N) (contract §3)."""
        mean = 1.0 + sum(t.weight * m for t, m, _ in moms) * kappa
        var = sum(t.weight**2 * N for t, _, N in moms) * kappa**2
        return mean**2 + var

    def second_moment(self, Y: np.ndarray, A: np.ndarray,
                      parts: Sequence[tuple[np.ndarray, Callable]], K: np.ndarray | None = None
                      ) -> np.ndarray:
        """T(Y) from the mean map A and per-set (A_S, N_S) in step order, N_S(Y) = s_S² times the
        noise of set S (any coordinates, A not assumed symmetric)."""
        Z = Y if K is None else K @ Y @ K.T
        return A @ Y @ A.T + sum(noise(Z) for _, noise in parts)

    def apply_T(self, dyn: Any, M: np.ndarray, adjoint: bool = False) -> np.ndarray:
        """T(M) (or T*(M)) of the span operator, in the eigen-free form the solvers use."""
        raise NotImplementedError

    def matrix_T(self, dyn: Any) -> np.ndarray:
        """The r²×r² matrix of T in row-major vec coordinates (small r)."""
        raise NotImplementedError

    def mean_deviation(self, dyn: Any) -> np.ndarray:
        """E = I − E[J] formed without cancellation (regular splitting, contract §3)."""
        return -sum(t.weight * t.mean for t in dyn.terms) @ dyn.K

    def noise_T(self, dyn: Any, M: np.ndarray) -> np.ndarray:
        """𝒩(M) = T(M) − E[J] M E[J]ᵀ, formed directly (no subtraction)."""
        raise NotImplementedError


class Summed(Combinator):
    """J = I + Σ_S s_S Ĥ_S: T is self-adjoint on Sym_r (contract §10)."""

    name = "summed"
    self_adjoint = True

    def apply_T(self, dyn: Any, M: np.ndarray, adjoint: bool = False) -> np.ndarray:
        A = dyn.mean_map
        out = A @ M @ A
        for t in dyn.terms:
            w = abs(t.weight)  # w²N(M) as w·N(w·M): no overflow of N(M) at curvature ~1e200
            out += w * t.noise(w * M)
        return out

    def matrix_T(self, dyn: Any) -> np.ndarray:
        A = dyn.mean_map
        out = np.kron(A, A)
        for t in dyn.terms:
            out += t.weight**2 * t.kron_noise()
        return out

    def noise_T(self, dyn: Any, M: np.ndarray) -> np.ndarray:
        out = np.zeros_like(M)
        for t in dyn.terms:
            out += t.weight**2 * t.noise(M)
        return out


class Alternating(Combinator):
    """J = A_F A_R (retain step, then forget step): T = T_F ∘ T_R."""

    name = "alternating"
    products = True

    def mean_map(self, eye: np.ndarray, terms: Sequence[Any], step_maps: dict,
                 K: np.ndarray) -> np.ndarray:
        return step_maps.get("forget", eye) @ step_maps.get("retain", eye)

    def compose(self, J: np.ndarray, b: np.ndarray, A: np.ndarray, bt: np.ndarray,
                eye: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return A @ J, A @ b + bt

    def chain(self, x: Any, a: Any) -> Any:
        return (1.0 + a) * x

    def groups(self, terms: Sequence[Any]) -> list[list[Any]]:
        return [[t] for t in terms]

    def nonlinear_step(self, w: np.ndarray, parts: Sequence[tuple[float, Callable]],
                       ascent_gradient: Callable | None = None, ascent: float = 0.0
                       ) -> np.ndarray:
        # one set after the other, each at the point the previous one reached (a step that
        # already overflowed is not continued)
        for s, grad in parts:
            if not np.all(np.isfinite(w)):
                break
            w = w + s * grad(w)
        return w

    def rates(self, moms: Sequence[tuple], kappa: Any) -> np.ndarray:
        prod = 1.0
        for t, m, N in moms:
            prod = prod * ((1.0 + t.weight * m) ** 2 + t.weight**2 * N)
        return np.asarray(prod)

    def second_moment(self, Y: np.ndarray, A: np.ndarray,
                      parts: Sequence[tuple[np.ndarray, Callable]], K: np.ndarray | None = None
                      ) -> np.ndarray:
        for As, noise in parts:
            Y = As @ Y @ As.T + noise(Y)
        return Y

    def apply_T(self, dyn: Any, M: np.ndarray, adjoint: bool = False) -> np.ndarray:
        # T = T_F ∘ T_R with self-adjoint T_S, so T* = T_R ∘ T_F
        out = M
        for t in (reversed(dyn.terms) if adjoint else dyn.terms):
            A = dyn.step_maps[t.name]
            w = abs(t.weight)
            out = A @ out @ A + w * t.noise(w * out)
        return out

    def matrix_T(self, dyn: Any) -> np.ndarray:
        out = np.eye(dyn.r**2)
        for t in dyn.terms:
            A = dyn.step_maps[t.name]
            out = (np.kron(A, A) + t.weight**2 * t.kron_noise()) @ out
        return out

    def mean_deviation(self, dyn: Any) -> np.ndarray:
        E = np.zeros((dyn.r, dyn.r))
        for t in dyn.terms:  # I − A_t A = (I − A_t) + A_t (I − A)
            E = -t.weight * t.mean + dyn.step_maps[t.name] @ E
        return E

    def noise_T(self, dyn: Any, M: np.ndarray) -> np.ndarray:
        mean_part, Z = M, np.zeros_like(M)
        for t in dyn.terms:  # T_t(P M Pᵀ + Z) = A_t P M Pᵀ A_t + [A_t Z A_t + s² N_t(P M Pᵀ + Z)]
            A = dyn.step_maps[t.name]
            Z = A @ Z @ A + t.weight**2 * t.noise(mean_part + Z)
            mean_part = A @ mean_part @ A
        return Z


class SAM(Combinator):
    """J = I − ηĤ_R K with K = I + (ρ/a)H̄_R: SGD at the ascent point (α = 0 only)."""

    name = "sam"
    preconditioned = True
    takes_forget = False

    def ascent(self, schedule: Any) -> float:
        return schedule.sam_rho / schedule.sam_a

    def precondition(self, schedule: Any, mean_retain: np.ndarray | None,
                     eye: np.ndarray) -> np.ndarray:
        if mean_retain is None:
            raise ValueError("the SAM factor K needs the retain set's mean Hessian")
        return eye + self.ascent(schedule) * mean_retain

    def kappa(self, schedule: Any, m: Any) -> Any:
        return 1.0 + self.ascent(schedule) * m

    def nonlinear_step(self, w: np.ndarray, parts: Sequence[tuple[float, Callable]],
                       ascent_gradient: Callable | None = None, ascent: float = 0.0
                       ) -> np.ndarray:
        # the retain batch gradient at the ascent point w + (ρ/a)∇L_R(w) (full-batch gradient)
        if ascent_gradient is None:
            raise ValueError("SAM's nonlinear step needs the full-batch retain gradient")
        (s, grad), = parts
        return w + s * grad(w + ascent * ascent_gradient(w))

    def apply_T(self, dyn: Any, M: np.ndarray, adjoint: bool = False) -> np.ndarray:
        # A = I − ηH̄K symmetric (H̄ and K commute); T*(M) = AMA + η² K N(M) K
        A, K = dyn.mean_map, dyn.K
        t = dyn.terms[0]
        if adjoint:
            return A @ M @ A.T + t.weight**2 * (K @ t.noise(M) @ K)
        return A @ M @ A.T + t.weight**2 * t.noise(K @ M @ K)

    def matrix_T(self, dyn: Any) -> np.ndarray:
        A, K = dyn.mean_map, dyn.K
        t = dyn.terms[0]
        return np.kron(A, A) + t.weight**2 * t.kron_noise() @ np.kron(K, K)

    def noise_T(self, dyn: Any, M: np.ndarray) -> np.ndarray:
        t = dyn.terms[0]
        return t.weight**2 * t.noise(dyn.K @ M @ dyn.K)


#: every schedule kind, by name (the order of ``Schedule.schedule``'s options)
COMBINATORS: dict[str, Combinator] = {c.name: c() for c in (Summed, Alternating, SAM)}


def get_combinator(name: str) -> Combinator:
    """The combinator called ``name`` (one of :data:`COMBINATORS`)."""
    try:
        return COMBINATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"schedule must be one of {tuple(COMBINATORS)}, got {name!r}") from None
