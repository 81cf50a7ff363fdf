# Local stubs for the parts of optax this project uses (optax ships no py.typed).
# Extend them as the project uses more of optax; keep the signatures faithful.
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, TypeAlias

import jax
from jax.typing import ArrayLike

PyTree: TypeAlias = Any
OptState: TypeAlias = Any
Params: TypeAlias = Any
Updates: TypeAlias = Any
Schedule: TypeAlias = Callable[[ArrayLike], ArrayLike]
ScalarOrSchedule: TypeAlias = float | jax.Array | Schedule

class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...

class TransformUpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None
    ) -> tuple[Updates, OptState]: ...

class GradientTransformation(NamedTuple):
    init: TransformInitFn
    update: TransformUpdateFn

class GradientTransformationExtraArgs(GradientTransformation): ...

def apply_updates(params: Params, updates: Updates) -> Params: ...
def chain(*args: GradientTransformation) -> GradientTransformationExtraArgs: ...
def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: ArrayLike | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any | None = None,
) -> GradientTransformationExtraArgs: ...
def adam(
    learning_rate: ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
    mu_dtype: Any | None = None,
    *,
    nesterov: bool = False,
) -> GradientTransformationExtraArgs: ...
def adamw(
    learning_rate: ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
    mu_dtype: Any | None = None,
    weight_decay: ScalarOrSchedule = 1e-4,
    mask: Any | None = None,
    *,
    nesterov: bool = False,
) -> GradientTransformationExtraArgs: ...
def clip_by_global_norm(max_norm: float) -> GradientTransformation: ...
def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike, labels: ArrayLike, axis: int | tuple[int, ...] | None = -1
) -> jax.Array: ...
def l2_loss(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array: ...

class _Initable(Protocol):
    def init(self, params: Params) -> OptState: ...

def tree_map_params(
    initable: Callable[[Params], OptState] | _Initable,
    f: Callable[..., Any],
    state: OptState,
    /,
    *rest: Any,
    transform_non_params: Callable[..., Any] | None = None,
    is_leaf: Callable[[Params], bool] | None = None,
) -> OptState: ...

class MultiSteps:
    def __init__(
        self,
        opt: GradientTransformation,
        every_k_schedule: int | Callable[[jax.Array], jax.Array],
        use_grad_mean: bool = True,
        should_skip_update_fn: Callable[..., Any] | None = None,
    ) -> None: ...
    def init(self, params: Params) -> OptState: ...
    def update(
        self, updates: Updates, state: OptState, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, OptState]: ...
    def gradient_transformation(self) -> GradientTransformationExtraArgs: ...

class MultiStepsState(NamedTuple):
    mini_step: jax.Array
    gradient_step: jax.Array
    inner_opt_state: OptState
    acc_grads: Updates
    skip_state: Any

class InjectHyperparamsState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # optax names a field as tuple.count
    hyperparams: dict[str, ArrayLike]
    inner_state: OptState

class InjectStatefulHyperparamsState(NamedTuple):
    count: jax.Array  # type: ignore[assignment]  # optax names a field as tuple.count
    hyperparams: dict[str, ArrayLike]
    hyperparams_states: dict[str, Any]
    inner_state: OptState

def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | Iterable[str] = (),
    hyperparam_dtype: Any | None = None,
) -> Callable[..., GradientTransformationExtraArgs]: ...
def clip(max_delta: ArrayLike) -> GradientTransformation: ...
def linear_schedule(
    init_value: float,
    end_value: float,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule: ...
