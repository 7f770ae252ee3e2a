import copy
import inspect
import math

import pytest
import torch

from n2prune.solvers import (ADAM_KEYS, SGD_KEYS, SOLVERS, N2D2Adam, N2D2SGD, describe,
                             parse_clamping, read_clamping)


# ---- literal ports of N2D2 (spec §3.3, §3.4, §3.5), element by element on Python floats ----

def _clamp(x, low, high):
    if low is not None and x < low:
        return low
    if high is not None and x > high:
        return high
    return x


class LiteralSGD:
    """SGDSolver::getLearningRate + SGDSolver_Frame::update, line by line (None/StepDecay)."""

    def __init__(self, lr, momentum=0.0, decay=0.0, iteration_size=1, policy="None",
                 step_size=1, lr_decay=0.1, clamping=(None, None)):
        self.lr, self.momentum, self.decay, self.size = lr, momentum, decay, iteration_size
        self.policy, self.step_size, self.lr_decay = policy, step_size, lr_decay
        self.low, self.high = clamping
        self.passes, self.it, self.velocity = 0, 0, None

    def learning_rate(self, batch):
        if self.lr == 0.0:
            return 0.0
        if self.passes < self.size - 1:
            self.passes += 1
            return 0.0
        self.passes = 0
        rate = self.lr
        if self.policy == "StepDecay":
            pattern = (self.it * self.size * batch) % 2 ** 32
            rate *= self.lr_decay ** float(pattern // self.step_size)
        self.it += 1
        return rate

    def update(self, data, diff, batch):
        rate = self.learning_rate(batch)
        if rate == 0.0:
            return
        rate_diff = rate / (batch * self.size)
        if self.momentum == 0.0 and self.decay == 0.0:
            for i in range(len(data)):
                data[i] = _clamp(data[i] + rate_diff * diff[i], self.low, self.high)
            return
        if self.velocity is None:
            self.velocity = [0.0] * len(data)
        for i in range(len(data)):
            self.velocity[i] *= self.momentum
            self.velocity[i] += rate_diff * diff[i]
            if self.decay != 0.0:
                self.velocity[i] += -self.decay * rate * data[i]
            data[i] = _clamp(data[i] + self.velocity[i], self.low, self.high)


class LiteralAdam:
    """AdamSolver_Frame::update, line by line."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, clamping=(None, None)):
        self.lr, self.beta1, self.beta2, self.epsilon = lr, beta1, beta2, epsilon
        self.low, self.high = clamping
        self.steps, self.m, self.v = 0, None, None

    def update(self, data, diff):
        self.steps += 1
        if self.m is None:
            self.m, self.v = [0.0] * len(data), [0.0] * len(data)
        alpha = self.lr * math.sqrt(1.0 - self.beta2 ** self.steps) \
            / (1.0 - self.beta1 ** self.steps)
        epsilon = self.epsilon * math.sqrt(1.0 - self.beta2 ** self.steps)
        for i in range(len(data)):
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * diff[i]
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * (diff[i] * diff[i])
            data[i] += alpha * self.m[i] / (math.sqrt(self.v[i]) + epsilon)
            data[i] = _clamp(data[i], self.low, self.high)


def _grads(n_batches, size, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(size, generator=gen, dtype=torch.float64) for _ in range(n_batches)]


def _run_sgd_against_literal(batch, grads, **kwargs):
    start = [0.9, -0.95, 0.3, 0.45, -0.2]
    weight = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    literal_args = dict(lr=kwargs.get("learning_rate", 0.01),
                        momentum=kwargs.get("momentum", 0.0), decay=kwargs.get("decay", 0.0),
                        iteration_size=kwargs.get("iteration_size", 1),
                        policy=kwargs.get("lr_policy", "None"),
                        step_size=kwargs.get("learning_rate_step_size", 1),
                        lr_decay=kwargs.get("learning_rate_decay", 0.1),
                        clamping=parse_clamping(kwargs.get("clamping", "")))
    optimizer, literal = N2D2SGD([weight], batch, **kwargs), LiteralSGD(**literal_args)
    data, diff, history = list(start), None, []
    for grad in grads:
        optimizer.zero_grad()
        weight.grad = grad.clone()
        optimizer.step()
        batch_diff = [-batch * g for g in grad.tolist()]     # D = -sum over the batch
        if literal.passes == 0 or diff is None:              # N2D2's isNewIteration()
            diff = batch_diff
        else:
            diff = [a + b for a, b in zip(diff, batch_diff)]
        literal.update(data, diff, batch)
        assert torch.allclose(weight.detach(), torch.tensor(data, dtype=torch.float64),
                              rtol=1e-12, atol=1e-15)
        assert optimizer.param_groups[0]["pass"] == literal.passes
        assert optimizer.it == literal.it
        history.append(list(data))
    return history


@pytest.mark.parametrize("kwargs", [
    dict(learning_rate=0.3),
    dict(learning_rate=0.3, momentum=0.9, decay=0.05),
    dict(learning_rate=0.3, decay=0.05),
    dict(learning_rate=0.3, momentum=0.9, lr_policy="StepDecay",
         learning_rate_step_size=64, learning_rate_decay=0.5),
    dict(learning_rate=0.3, momentum=0.9, decay=0.05, iteration_size=2),
    dict(learning_rate=0.3, iteration_size=3, lr_policy="StepDecay",
         learning_rate_step_size=96, learning_rate_decay=0.5),
])
def test_sgd_matches_literal_n2d2_port(kwargs):
    _run_sgd_against_literal(32, _grads(9, 5), **kwargs)


@pytest.mark.parametrize("clamping,bound", [("-1.0:1.0", 1.0), (":0.5", 0.5)])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_clamping_matches_literal_port_and_binds(clamping, bound, momentum):
    history = _run_sgd_against_literal(32, _grads(8, 5, seed=3), learning_rate=0.5,
                                       momentum=momentum, clamping=clamping)
    assert max(max(step) for step in history) == bound


def test_sgd_first_steps_by_hand():
    weight = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = N2D2SGD([weight], 32, learning_rate=0.1, momentum=0.9, decay=0.01)
    weight.grad = torch.tensor([0.5], dtype=torch.float64)
    optimizer.step()     # M = -0.1*0.5 - 0.01*0.1*1 = -0.051
    assert weight.item() == pytest.approx(0.949, rel=1e-15)
    optimizer.step()     # M = 0.9*-0.051 - 0.05 - 0.001*0.949
    assert weight.item() == pytest.approx(0.949 - 0.096849, rel=1e-15)


def test_sgd_equals_torch_sgd_while_the_rate_is_constant():
    grads = _grads(6, 5, seed=1)
    ours = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
    theirs = torch.nn.Parameter(ours.detach().clone())
    n2d2 = N2D2SGD([ours], 16, learning_rate=0.05, momentum=0.9, decay=5e-4)
    reference = torch.optim.SGD([theirs], lr=0.05, momentum=0.9, weight_decay=5e-4)
    for grad in grads:
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        n2d2.step()
        reference.step()
        assert torch.allclose(ours, theirs, rtol=1e-13, atol=1e-16)


def test_sgd_differs_from_torch_sgd_when_the_rate_changes():
    # StepDecay halves the rate at the 3rd update; torch's buffer does not carry the rate.
    grads = _grads(3, 5, seed=2)
    ours = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
    theirs = torch.nn.Parameter(ours.detach().clone())
    n2d2 = N2D2SGD([ours], 32, learning_rate=0.1, momentum=0.9, lr_policy="StepDecay",
                   learning_rate_step_size=64, learning_rate_decay=0.5)
    reference = torch.optim.SGD([theirs], lr=0.1, momentum=0.9)
    for grad in grads[:2]:
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        n2d2.step()
        reference.step()
    assert torch.allclose(ours, theirs, rtol=1e-13)
    buffer = reference.state[theirs]["momentum_buffer"].clone()
    reference.param_groups[0]["lr"] = 0.05
    ours.grad, theirs.grad = grads[2].clone(), grads[2].clone()
    n2d2.step()
    reference.step()
    assert n2d2.current_lr == 0.05
    # N2D2: W - 0.05*g - 0.9*0.1*buf ; torch: W - 0.05*g - 0.9*0.05*buf
    assert torch.allclose(ours - theirs, -0.9 * (0.1 - 0.05) * buffer, rtol=1e-10, atol=1e-15)
    assert not torch.allclose(ours, theirs, rtol=1e-6)


def test_iteration_size_2_skips_then_updates_with_the_mean_of_both_batches():
    weight = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = N2D2SGD([weight], 4, learning_rate=0.1, iteration_size=2)
    weight.grad = torch.tensor([0.2], dtype=torch.float64)
    optimizer.step()
    assert weight.item() == 1.0 and optimizer.current_lr == 0.0
    assert optimizer.param_groups[0]["pass"] == 1 and optimizer.it == 0
    optimizer.zero_grad()    # zeroing between batches is fine: the optimizer keeps the sum
    weight.grad = torch.tensor([0.6], dtype=torch.float64)
    optimizer.step()
    assert weight.item() == pytest.approx(1.0 - 0.1 * (0.2 + 0.6) / 2, rel=1e-15)
    assert optimizer.current_lr == 0.1 and optimizer.it == 1
    weight.grad = torch.tensor([0.0], dtype=torch.float64)
    optimizer.step()
    optimizer.step()         # the sum was reset after the update: nothing moves
    assert weight.item() == pytest.approx(0.96, rel=1e-15)


def test_learning_rate_zero_freezes_weights_and_counters_even_with_decay():
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = N2D2SGD([weight], 8, learning_rate=0.0, decay=0.1, iteration_size=2)
    weight.grad = torch.tensor([1.0])
    for _ in range(3):
        optimizer.step()
    group = optimizer.param_groups[0]
    assert weight.item() == 1.0 and (group["it"], group["pass"]) == (0, 0)


def test_decay_moves_weights_whose_gradient_is_zero_or_missing():
    # Pruned weights get a zero (masked) gradient, but N2D2's decay still shrinks them.
    pruned = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    unused = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = N2D2SGD([pruned, unused], 32, learning_rate=0.1, decay=0.1)
    pruned.grad = torch.tensor([0.0, 0.5], dtype=torch.float64)
    optimizer.step()
    assert pruned.tolist() == pytest.approx([1.0 - 0.01, 2.0 - 0.05 - 0.02], rel=1e-15)
    assert unused.item() == pytest.approx(0.99, rel=1e-15)


def test_poly_decay_through_the_optimizer_stops_at_max_iterations():
    weight = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = N2D2SGD([weight], 32, learning_rate=0.1, lr_policy="PolyDecay",
                        max_iterations=4, power=1.0)
    rates = []
    for _ in range(7):
        weight.grad = torch.tensor([1.0])
        optimizer.step()
        rates.append(optimizer.current_lr)
    assert rates == [0.1, 0.1 * 0.75, 0.1 * 0.5, 0.1 * 0.25, 0.0, 0.0, 0.0]
    assert optimizer.it == 4


def test_param_groups_have_their_own_solver_settings_and_counters():
    weights = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    bias = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    optimizer = N2D2SGD([{"params": [weights], "decay": 0.1},
                         {"params": [bias], "learning_rate": 0.2}], 32, learning_rate=0.1)
    weights.grad = torch.tensor([0.5], dtype=torch.float64)
    bias.grad = torch.tensor([0.5], dtype=torch.float64)
    optimizer.step()
    assert weights.item() == pytest.approx(1.0 - 0.05 - 0.01, rel=1e-15)
    assert bias.item() == pytest.approx(0.9, rel=1e-15)
    assert [g["current_lr"] for g in optimizer.param_groups] == [0.1, 0.2]


def test_sgd_logs_n2d2_step_change_lines():
    said = []
    weight = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = N2D2SGD([weight], 32, learning_rate=0.1, lr_policy="StepDecay",
                        learning_rate_step_size=64, learning_rate_decay=0.5, log=said.append)
    for _ in range(5):
        weight.grad = torch.tensor([1.0])
        optimizer.step()
    assert said == ["Learning rate after 2(x32) iteration(s): 0.05",
                    "Learning rate after 4(x32) iteration(s): 0.025"]


def _adam_run(batch, grads, **kwargs):
    start = [0.9, -0.95, 0.3, 0.45, -0.2]
    weight = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = N2D2Adam([weight], batch, **kwargs)
    literal = LiteralAdam(kwargs.get("learning_rate", 0.001), kwargs.get("beta1", 0.9),
                          kwargs.get("beta2", 0.999), kwargs.get("epsilon", 1e-8),
                          parse_clamping(kwargs.get("clamping", "")))
    data = list(start)
    for grad in grads:
        weight.grad = grad.clone()
        optimizer.step()
        literal.update(data, [-batch * g for g in grad.tolist()])
        assert torch.allclose(weight.detach(), torch.tensor(data, dtype=torch.float64),
                              rtol=1e-12, atol=1e-15)
    return weight, data


@pytest.mark.parametrize("kwargs", [dict(), dict(learning_rate=0.1, epsilon=10.0),
                                    dict(learning_rate=0.3, clamping="-0.5:0.5")])
def test_adam_matches_literal_n2d2_port(kwargs):
    weight, _ = _adam_run(8, _grads(6, 5, seed=4), **kwargs)
    if "clamping" in kwargs:
        assert weight.abs().max().item() == 0.5


def test_adam_does_not_divide_by_batch_size_so_it_is_torch_adam_with_eps_over_b():
    grads = _grads(5, 5, seed=5)
    ours = torch.nn.Parameter(torch.linspace(-1, 1, 5, dtype=torch.float64))
    theirs = torch.nn.Parameter(ours.detach().clone())
    n2d2 = N2D2Adam([ours], 16, learning_rate=0.01, epsilon=1.0)
    reference = torch.optim.Adam([theirs], lr=0.01, eps=1.0 / 16)
    for grad in grads:
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        n2d2.step()
        reference.step()
    assert torch.allclose(ours, theirs, rtol=1e-12)
    assert n2d2.steps == 5 and n2d2.current_lr == 0.01


@pytest.mark.parametrize("make", [
    lambda p: N2D2SGD(p, 32, learning_rate=0.1, momentum=0.9, decay=1e-3, iteration_size=2,
                      lr_policy="StepDecay", learning_rate_step_size=128,
                      learning_rate_decay=0.5),
    lambda p: N2D2Adam(p, 32, learning_rate=0.01, clamping=":0.8"),
])
def test_state_dict_round_trip_continues_identically(make):
    grads = _grads(8, 5, seed=6)
    weight = torch.nn.Parameter(torch.linspace(-1, 1, 5))
    optimizer = make([weight])
    for grad in grads[:3]:            # SGD stops mid-accumulation (pass 1)
        weight.grad = grad.float()
        optimizer.step()
    saved = copy.deepcopy(optimizer.state_dict())
    twin = torch.nn.Parameter(weight.detach().clone())
    resumed = type(optimizer)([twin], 1)     # other settings: load_state_dict restores them
    resumed.load_state_dict(saved)
    for grad in grads[3:]:
        weight.grad, twin.grad = grad.float(), grad.float()
        optimizer.step()
        resumed.step()
        assert torch.equal(weight, twin)
        assert resumed.param_groups[0]["current_lr"] == optimizer.param_groups[0]["current_lr"]


def test_a_deep_copy_keeps_working():
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = copy.deepcopy(N2D2SGD([weight], 32, lr_policy="StepDecay", log=print))
    optimizer.param_groups[0]["params"][0].grad = torch.tensor([1.0])
    optimizer.step()
    assert optimizer.it == 1


def test_state_dict_holds_the_counters():
    weight = torch.nn.Parameter(torch.tensor([0.0]))
    optimizer = N2D2SGD([weight], 32, iteration_size=2)
    weight.grad = torch.tensor([1.0])
    for _ in range(3):
        optimizer.step()
    group = optimizer.state_dict()["param_groups"][0]
    assert (group["it"], group["pass"], group["current_lr"]) == (1, 1, 0.0)


# ---- tables, registry, arguments ----

@pytest.mark.parametrize("cls,keys", [(N2D2SGD, SGD_KEYS), (N2D2Adam, ADAM_KEYS)])
def test_signature_defaults_are_the_n2d2_defaults_of_the_table(cls, keys):
    parameters = inspect.signature(cls).parameters
    assert [key.arg for key in keys if key.arg not in parameters] == []
    assert {key.arg: parameters[key.arg].default for key in keys} == \
        {key.arg: key.default for key in keys}


def test_solver_registry_is_keyed_by_ini_type():
    assert {"SGD", "Adam"} <= set(SOLVERS.names())  # N2D2's; plug-ins may add more
    assert SOLVERS.get("SGD") is N2D2SGD and N2D2SGD.KEYS is SGD_KEYS
    assert SOLVERS.get("Adam") is N2D2Adam and N2D2Adam.KEYS is ADAM_KEYS
    with pytest.raises(ValueError, match=r"unknown solver 'Sgd'"):
        SOLVERS.get("Sgd")


def test_ini_readers_of_the_tables():
    readers = {key.ini: key.reader for key in SGD_KEYS}
    assert readers["LearningRatePolicy"]("CosineDecay") == "CosineDecay"
    assert readers["IterationSize"]("2") == 2
    assert readers["Clamping"]("-1.0:1.0") == "-1.0:1.0"
    with pytest.raises(ValueError, match="'min:max'"):
        read_clamping("1.0")
    with pytest.raises(ValueError, match="did you mean 'PolyDecay'"):
        readers["LearningRatePolicy"]("Polydecay")


@pytest.mark.parametrize("text,expected", [("", (None, None)), ("-1.0:1.0", (-1.0, 1.0)),
                                           (":0.5", (None, 0.5)), ("0:", (0.0, None)),
                                           (":", (None, None))])
def test_parse_clamping(text, expected):
    assert parse_clamping(text) == expected


@pytest.mark.parametrize("text", ["1.0", "a:b", "1:2:3", "1.0f:2"])
def test_parse_clamping_rejects_with_value_and_form(text):
    with pytest.raises(ValueError, match=rf"clamping='{text}': expected the form 'min:max'"):
        parse_clamping(text)


@pytest.mark.parametrize("kwargs,message", [
    (dict(learning_rate=-0.1), "learning_rate=-0.1 is not allowed; expected a finite number >= 0"),
    (dict(learning_rate=float("nan")), "learning_rate=nan is not allowed; expected a finite"),
    (dict(lr_policy="Step"), "lr_policy='Step' is not allowed; unknown learning-rate policy"),
    (dict(momentum=-1), "momentum=-1 is not allowed; expected a finite number >= 0"),
    (dict(decay="0.1"), "decay='0.1' is not allowed; expected a finite number"),
    (dict(power=math.inf), "power=inf is not allowed; expected a finite number"),
    (dict(iteration_size=0), "iteration_size=0 is not allowed; expected an integer from 1 to"),
    (dict(iteration_size=1.5), "iteration_size=1.5 is not allowed; expected an integer"),
    (dict(max_iterations=-1), "max_iterations=-1 is not allowed; expected an integer from 0"),
    (dict(warm_up_duration=2 ** 32), "warm_up_duration=4294967296 is not allowed; expected an "
                                     "integer from 0 to 4294967295"),
    (dict(warm_up_lr_frac=None), "warm_up_lr_frac=None is not allowed"),
    (dict(learning_rate_decay=math.nan), "learning_rate_decay=nan is not allowed"),
    (dict(min_decay="x"), "min_decay='x' is not allowed"),
    (dict(lr_policy="StepDecay", learning_rate_step_size=0),
     "learning_rate_step_size=0 is not allowed with lr_policy='StepDecay'; expected an integer"),
    (dict(lr_policy="CosineDecay", learning_rate_step_size=0),
     "learning_rate_step_size=0 is not allowed with lr_policy='CosineDecay'"),
    (dict(lr_policy="PolyDecay"), "max_iterations=0 is not allowed with lr_policy='PolyDecay'"),
    (dict(clamping="1.0"), "clamping='1.0' is not allowed; expected the form 'min:max'"),
    (dict(clamping="2:1"), "clamping='2:1' is not allowed; min 2.0 is greater than max 1.0"),
    (dict(clamping=None), "clamping=None is not allowed; expected a string of the form"),
    (dict(polyak_momentum=2), "polyak_momentum=2 is not allowed; expected True or False"),
    (dict(batch_size=0), "batch_size=0 is not allowed; expected an integer from 1 to"),
    (dict(batch_size=True), "batch_size=True is not allowed; expected an integer"),
])
def test_sgd_bad_arguments_name_argument_value_and_what_is_allowed(kwargs, message):
    args = dict(batch_size=32)
    args.update(kwargs)
    with pytest.raises(ValueError) as error:
        N2D2SGD([torch.nn.Parameter(torch.zeros(1))], **args)
    assert str(error.value).startswith("N2D2SGD: ")
    assert message in str(error.value)


@pytest.mark.parametrize("kwargs,message", [
    (dict(learning_rate=-1.0), "learning_rate=-1.0 is not allowed; expected a finite number"),
    (dict(beta1=1.0), "beta1=1.0 is not allowed; expected a finite number >= 0.0 and < 1.0"),
    (dict(beta2=-0.1), "beta2=-0.1 is not allowed"),
    (dict(epsilon=-1e-8), "epsilon=-1e-08 is not allowed; expected a finite number >= 0"),
    (dict(clamping="x"), "clamping='x' is not allowed; expected the form 'min:max'"),
    (dict(batch_size=-4), "batch_size=-4 is not allowed"),
])
def test_adam_bad_arguments(kwargs, message):
    args = dict(batch_size=32)
    args.update(kwargs)
    with pytest.raises(ValueError, match="^N2D2Adam: ") as error:
        N2D2Adam([torch.nn.Parameter(torch.zeros(1))], **args)
    assert message in str(error.value)


def test_bad_param_group_is_refused_and_not_added():
    optimizer = N2D2SGD([torch.nn.Parameter(torch.zeros(1))], 32)
    with pytest.raises(ValueError, match="momentum=-0.5 is not allowed"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))],
                                   "momentum": -0.5})
    assert len(optimizer.param_groups) == 1


def test_describe_is_one_line_with_non_default_settings_and_counters():
    weight = torch.nn.Parameter(torch.zeros(1))
    sgd = N2D2SGD([weight], 32, learning_rate=0.05, momentum=0.9,
                  lr_policy="StepDecay", learning_rate_step_size=60000,
                  learning_rate_decay=0.993, clamping="-1.0:1.0")
    weight.grad = torch.zeros(1)
    sgd.step()
    assert describe(sgd) == ("SGD(B=32) LearningRate=0.05 LearningRatePolicy=StepDecay "
                             "Momentum=0.9 LearningRateStepSize=60000 "
                             "LearningRateDecay=0.993 Clamping=-1.0:1.0 it=1 lr=0.05")
    assert describe(N2D2Adam([weight], 8)) == "Adam(B=8) steps=0 lr=0"
    with pytest.raises(TypeError, match=r"expected a registered solver \(SGD, Adam\), got SGD"):
        describe(torch.optim.SGD([weight], lr=0.1))


def test_lenet_solver_keys_build_an_optimizer_through_the_table():
    from n2prune.ini.params import kwargs_from
    from fakesection import FakeSection

    section = FakeSection({"WeightsSolver.LearningRate": "0.05",
                           "WeightsSolver.Momentum": "0.9", "WeightsSolver.Decay": "0.0005",
                           "Solvers.LearningRatePolicy": "StepDecay",
                           "Solvers.LearningRateStepSize": "60000",
                           "Solvers.LearningRateDecay": "0.993",
                           "Solvers.Clamping": "-1.0:1.0"})
    kwargs = {**kwargs_from(section, SGD_KEYS, "Solvers."),
              **kwargs_from(section, SGD_KEYS, "WeightsSolver.")}
    optimizer = N2D2SGD([torch.nn.Parameter(torch.zeros(1))], 32, **kwargs)
    assert describe(optimizer) == ("SGD(B=32) LearningRate=0.05 LearningRatePolicy=StepDecay "
                                   "Momentum=0.9 Decay=0.0005 LearningRateStepSize=60000 "
                                   "LearningRateDecay=0.993 Clamping=-1.0:1.0 it=0 lr=0")
    bad = FakeSection({"Solvers.Clamping": "-1.0,1.0"}, name="conv1")
    with pytest.raises(ValueError, match=r"\[conv1\] Solvers.Clamping=-1.0,1.0: expected the "
                                         r"form 'min:max'"):
        kwargs_from(bad, SGD_KEYS, "Solvers.")
