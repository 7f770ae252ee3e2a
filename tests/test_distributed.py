"""Learning on several processes: shares of the global batch, identical replicas, equality
with one process, errors on one rank, a distributed run killed and resumed (gloo, CPU)."""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from n2prune.cli import train_main
from n2prune.train.distributed import (TIMEOUT_ENV, Ranks, bit_checksum, reduce_statistics,
                                       timeout, world_from_env)
from n2prune.train.launch import free_port, launch, rank_environment, train_command
from nets import BN_DIGITS  # conv, BatchNorm, Fc on the embedded digits

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "networks" / "digits.ini")
ARGS = [DIGITS, "-learn-epoch", "3", "-seed", "5", "--threads", "1", "--quiet"]

# Each rank runs n2prune's CLI; the test's own hooks (patched in this rank's process only)
# save the rank's final state, make rank 1 fail, or kill rank 0 after two log points.
WORKER = textwrap.dedent("""
    import os, signal, sys
    import torch
    from n2prune.cli import train_main
    from n2prune.train import trainer as T
    from n2prune.train.distributed import reduce_statistics
    mode, out, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    rank = int(os.environ["RANK"])
    if mode == "fail" and rank == 1:
        step, calls = T.Trainer._step, []
        def failing(self, x, labels):
            calls.append(1)
            if len(calls) == 3:
                raise ValueError("boom on the third step")
            return step(self, x, labels)
        T.Trainer._step = failing
    if mode == "kill" and rank == 0:
        log_point = T.Trainer._log_point
        def log_then_die(self, state, *rest):
            log_point(self, state, *rest)
            if len(state["rows"]) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        T.Trainer._log_point = log_then_die
    def merged_statistics():
        # rank r gathers samples 4r..4r+3 of a batch of 8 (and gradient r); the reference is
        # the whole batch in one process. Samples 0 and 4 hold the minimum, 1 and 5 the
        # maximum, so both ranks' histogram ranges are the whole batch's.
        from n2prune.prune import statistics as S
        from n2prune.prune.calibration import StatisticsCollector
        g = torch.Generator().manual_seed(0)
        x, w = torch.randn(8, 3, 5, 5, generator=g), torch.randn(4, 3, 3, 3, generator=g)
        y = torch.rand(8, 4, 5, 5, generator=g) * 2 - 1
        y[0], y[1] = -10.0, 10.0
        y[4], y[5] = y[0], y[1]
        grads = torch.randn(2, 4, 3, 3, 3, generator=g)
        needs = set(S.INPUT_STATS + S.OUTPUT_STATS)
        mine, whole = {}, {}
        for stats, part, grad_parts in ((mine, slice(4 * rank, 4 * rank + 4), [rank]),
                                        (whole, slice(0, 8), [0, 1])):
            S.update_inputs(stats, x[part], w, needs,
                            lambda t: torch.nn.functional.unfold(t, 3, padding=1))
            S.update_outputs(stats, y[part], w, needs)
            for k in grad_parts:
                S.update_grad(stats, grads[k])
        StatisticsCollector.reduce(mine)  # what a distributed run's collectors call
        other = {"sum": torch.tensor([rank + 1.0]), "frac": torch.tensor([2.0 * rank])}
        reduce_statistics(other, summed=["sum"])
        return {"merged": mine, "whole": whole, "other": other}
    if mode == "learn":
        run = T.Trainer.run
        def run_and_save(self):
            stats = merged_statistics()
            report = run(self)
            saved = {"net": {k: v.clone() for k, v in self.net.state_dict().items()
                             if isinstance(v, torch.Tensor)}, "stats": stats}
            if rank == 1:
                with torch.no_grad():
                    self.net.cells["fc2"].weight.view(-1)[0] += 1e-3
            try:
                self.ranks.check_identical(self.net, "in the test")
            except RuntimeError as error:
                saved["guard"] = str(error)
            torch.save(saved, os.path.join(out, f"rank{rank}.pt"))
            return report
        T.Trainer.run = run_and_save
    sys.exit(train_main(argv))
""")


class _Provider:
    """Records the indices a batch was asked for."""

    def batch(self, set_name, index, generator):
        return index.clone(), index.clone()

    def size(self, set_name):
        return 10

    def batches(self, set_name, generator=None, batch_size=None):
        yield torch.arange(10), torch.arange(10)


@pytest.mark.parametrize("size,world", [(7, 3), (8, 2), (2, 3), (1, 1)])
def test_shares_cover_the_global_batch_and_weights_give_its_mean(size, world):
    chosen = torch.arange(100, 100 + size)
    shares, weighted = [], 0.0
    for rank in range(world):
        ranks = Ranks(world, rank)
        x, _ = ranks.local_batch(_Provider(), chosen, (5, 0))
        seen, stimuli = ranks.counts(len(x))
        assert stimuli == size
        shares.append(x[:seen])
        weighted += ranks.weight * float(x.double().mean()) / world  # what DDP averages
        if seen == 0:
            assert ranks.weight == 0.0 and len(x) == 1  # a stand-in that weighs nothing
    assert torch.equal(torch.cat(shares), chosen)
    assert weighted == pytest.approx(float(chosen.double().mean()))


def test_shares_of_seven_over_three_ranks():
    sizes = []
    for rank in range(3):
        ranks = Ranks(3, rank)
        x, _ = ranks.local_batch(_Provider(), torch.arange(7), (0, 0))
        sizes.append((x.tolist(), ranks.weight))
    assert sizes == [([0, 1, 2], 9 / 7), ([3, 4], 6 / 7), ([5, 6], 6 / 7)]


def test_evaluation_shares_cover_the_set_once():
    seen = []
    for rank in range(3):
        for x, _ in Ranks(3, rank).eval_batches(_Provider(), "Test", None, batch_size=2):
            seen += x.tolist()
    assert seen == list(range(10))


def test_one_process_is_the_identity():
    ranks = Ranks()
    loss = torch.tensor(2.5)
    assert ranks.writer and ranks.scale(loss) is loss and ranks.counts(32) == (32, 32)
    assert ranks.sum_numbers({"a": 1.5}) == {"a": 1.5}
    stats = {"grad_sq": torch.tensor([3.0])}
    assert reduce_statistics(stats)["grad_sq"].item() == 3.0
    assert ranks.from_writer(lambda: 7) == 7


def test_bit_checksum_sees_one_ulp():
    a = torch.linspace(-1, 1, 1000)
    b = a.clone()
    b[500] = torch.nextafter(b[500], torch.tensor(2.0))
    assert torch.equal(bit_checksum(a), bit_checksum(a.clone()))
    assert not torch.equal(bit_checksum(a), bit_checksum(b))


def test_environment_errors_and_launcher_environment():
    assert world_from_env({}) == (1, 0, 0)
    assert world_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == (4, 2, 0)
    with pytest.raises(ValueError, match="RANK=4 WORLD_SIZE=4"):
        world_from_env({"WORLD_SIZE": "4", "RANK": "4"})
    env = rank_environment(1, 2, 29500, base={})
    assert env["RANK"] == "1" and env["WORLD_SIZE"] == "2" and env["MASTER_ADDR"] == "127.0.0.1"
    port = free_port()
    with socket.socket() as sock:  # free: it can be bound again
        sock.bind(("127.0.0.1", port))


def test_the_collector_reduces_each_cell_before_the_masks_are_computed():
    from n2prune.cells import Conv, Fc, Sequence
    from n2prune.prune import PruneCell
    from n2prune.prune.calibration import StatisticsCollector
    torch.manual_seed(0)
    model = Sequence([Conv(2, 6, kernel_dims=[3, 3]), Fc(6 * 4 * 4, 5)])
    cells = {}
    for index, layer in enumerate(model):
        layer.quantizer = PruneCell(prune_mode="Static", threshold=0.5, prune_filler="ActivationMagnitude")
        cells[str(index)] = layer.quantizer
    calls = []

    def reduce(stats):  # stands in for the cross-rank merge: records, then changes a value
        calls.append((sorted(stats), float(min(c.mask.min() for c in cells.values()))))
        stats["input_sq_mean"].fill_(1.0)

    collector = StatisticsCollector(cells, batches=2)
    collector.reduce = reduce
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 2, 6, 6, generator=gen), torch.randint(0, 5, (4,),
                                                                      generator=gen))
               for _ in range(2)]
    collector.calibrate(model, batches, torch.nn.functional.cross_entropy)
    assert len(calls) == 2 and all("input_sq_mean" in names for names, _ in calls)
    assert calls[0][1] == 1.0  # no mask computed before the statistics were merged
    for layer, cell in zip(model, cells.values()):  # masks from the merged values (all 1):
        scores = layer.weight.detach().abs().flatten()  # |w| * sqrt(E[x^2]) = |w|
        pruned = math.ceil(0.5 * scores.numel())
        kept = scores > scores.sort().values[pruned - 1]
        assert torch.equal(cell.mask.flatten().bool(), kept)
        assert torch.equal(cell.stats["input_sq_mean"], torch.ones_like(
            cell.stats["input_sq_mean"]))


def test_collective_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert timeout().total_seconds() == 600
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    assert timeout().total_seconds() == 2.5
    for bad in ("0", "-3", "soon"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=f"N2PRUNE_DIST_TIMEOUT='{bad}': must be a "
                                             f"positive number of seconds"):
            timeout()


def test_a_batch_smaller_than_the_processes_is_refused():
    with pytest.raises(ValueError, match=r"BatchSize=2 is the global batch .* \(3\)"):
        Ranks(3, 0).check_batch(2)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The one-process run every distributed run is compared with."""
    output = tmp_path_factory.mktemp("single") / "run"
    assert train_main([*ARGS, "--output", str(output)]) == 0
    return torch.load(output / "model.pt", weights_only=True)["net"], output


def _worker(tmp_path, mode, output, nproc=2):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, str(script), mode, str(tmp_path), *ARGS, "--output", str(output)]
    log = tmp_path / f"{mode}.stderr"
    with open(log, "w") as stream:
        code = launch(command, nproc, stderr=stream)
    return code, log.read_text()


def _tensors(state):
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _assert_close_to_single(net, single_net):
    for name, value in _tensors(single_net).items():
        if name.endswith(".mask"):
            assert torch.equal(net[name], value), name
        elif value.is_floating_point():
            torch.testing.assert_close(net[name], value, rtol=1e-4, atol=1e-5, msg=name)
        else:
            assert torch.equal(net[name], value), name  # counters: global stimuli


def test_two_ranks_learn_identical_replicas_equal_to_one_process(tmp_path, single):
    output = tmp_path / "two"
    code, stderr = _worker(tmp_path, "learn", output)
    assert code == 0, stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    zero, one = _tensors(ranks[0]["net"]), _tensors(ranks[1]["net"])
    assert zero.keys() == one.keys() and any(k.endswith(".mask") for k in zero)
    for name in zero:
        assert torch.equal(zero[name], one[name]), name  # bitwise: same masks and weights
    _assert_close_to_single(zero, single[0])
    for rank in ranks:  # statistics merged over the ranks equal the whole batch's
        stats = rank["stats"]
        assert stats["other"]["sum"].item() == 3.0 and stats["other"]["frac"].item() == 1.0
        assert stats["merged"].keys() == stats["whole"].keys()
        assert {"grad", "input_sq_mean", "output_var", "output_hist"} <= stats["whole"].keys()
        for name, value in stats["whole"].items():
            torch.testing.assert_close(stats["merged"][name], value, rtol=1e-5, atol=1e-6,
                                       msg=name, check_dtype=False)
    for rank in ranks:  # the guard saw rank 1's nudged weight, on both ranks
        assert rank["guard"].startswith("layers.fc2.weight differs between rank 0 and rank 1")
    single_log = (single[1] / "log.csv").read_text().splitlines()
    log = (output / "log.csv").read_text().splitlines()
    assert len(log) == len(single_log) == 4
    for ours, theirs in zip(log[1:], single_log[1:]):  # stimuli, accuracies: global and equal
        assert ours.split(",")[1:3] == theirs.split(",")[1:3]
        assert ours.split(",")[4:7] == theirs.split(",")[4:7]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rank")) == \
        ["rank0.pt", "rank1.pt"]


def test_an_error_on_one_rank_stops_every_rank_with_its_message(tmp_path):
    code, stderr = _worker(tmp_path, "fail", tmp_path / "out")
    assert code == 2
    assert stderr.strip().splitlines()[-1] == "error: rank 1: boom on the third step"


def test_a_distributed_run_killed_resumes_on_one_process(tmp_path, single, capsys):
    """Resuming on another number of processes continues within float rounding (not
    bitwise): it says so, and log.csv records which log points each count computed."""
    output = tmp_path / "cut"
    code, stderr = _worker(tmp_path, "kill", output)
    assert code == 2 and stderr.strip().endswith("error: rank 0: killed by signal SIGKILL")
    cut = (output / "log.csv").read_text().splitlines()
    assert len(cut) == 3  # two log points
    assert not (output / "model.pt").exists()
    capsys.readouterr()
    assert train_main([*ARGS, "--output", str(output), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "warning: --resume: log points 1-2 were learned on 2 process(es), the rest runs " \
           "on 1" in err and "not bitwise" in err and "best log point" in err
    net = torch.load(output / "model.pt", weights_only=True)["net"]
    _assert_close_to_single(net, single[0])
    log = (output / "log.csv").read_text().splitlines()
    assert len(log) == 4 and log[:3] == cut   # the 2-process points kept as computed
    column = log[0].split(",").index("processes")
    assert [row.split(",")[column] for row in log[1:]] == ["2", "2", "1"]
    # the best point is chosen from these recorded scores, whichever count computed them
    report = json.loads((output / "report.json").read_text())
    header = log[0].split(",")
    rows = [dict(zip(header, row.split(","))) for row in log[1:]]
    eligible = [r for r in rows if r["pruning_done"] == "True"]
    best = max(eligible, key=lambda r: float(r["validation_score"]))
    assert report["best_log_point"] == int(best["log_point"])


def test_nproc_runs_the_cli_on_two_processes(tmp_path, single):
    output = tmp_path / "cli"
    process = subprocess.run(train_command([*ARGS, "--output", str(output), "--nproc", "2"]),
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr
    net = torch.load(output / "model.pt", weights_only=True)["net"]
    _assert_close_to_single(net, single[0])
    # -test on two processes: each evaluates half the test set, the counts are summed
    process = subprocess.run(train_command(["-test", *ARGS, "--output", str(output),
                                            "--nproc", "2"]),
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr
    learnt = json.loads((output / "report.json").read_text())
    tested = json.loads((output / "test_report.json").read_text())
    assert tested["test_accuracy"] == learnt["test_accuracy"] and tested["seed"] == 5


def test_data_driven_criteria_give_the_same_masks_on_every_rank(tmp_path):
    # Entropy scores channels from histograms each rank gathers on its own share; without
    # the merge of statistics the ranks compute different masks and the guard stops the run
    text = Path(DIGITS).read_text().replace(
        "QWeight.PruningFiller=IterNonStruct",
        "QWeight.PruningFiller=Entropy\nQWeight.PruningPattern=Channel\n"
        "QWeight.CalibrationBatches=2")
    assert "Entropy" in text
    ini = tmp_path / "entropy.ini"
    ini.write_text(text)
    output = tmp_path / "out"
    process = subprocess.run(train_command([str(ini), *ARGS[1:], "--output", str(output),
                                            "--nproc", "2"]),
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr
    report = json.loads((output / "report.json").read_text())
    assert report["sparsity"] > 0.7
    mask = torch.load(output / "model.pt", weights_only=True)["net"][
        "layers.conv2.quantizer.mask"]
    rows = mask.reshape(mask.shape[0], -1)
    assert bool(((rows == 0).all(1) | (rows == 1).all(1)).all())  # whole channels



def test_every_rank_recalibrates_batchnorm_on_the_batches_one_process_would(tmp_path):
    # --recalibrate-bn draws its batches from a generator seeded by the seed and the global
    # stimuli: the network saved right after the last mask update carries exactly the
    # statistics one process computes from its weights on those batches
    from n2prune.prune.recalibration import recalibrate
    from n2prune.train.trainer import Trainer, TrainOptions
    ini = tmp_path / "bn.ini"
    ini.write_text(BN_DIGITS)
    # random batches, a log point (and a Gradual step) every 40 of them: the last mask update
    # is the last step
    args = [str(ini), "-learn", "3840", "-log", "1280", "-log-epoch", "0", "-seed", "5",
            "--threads", "1", "--quiet", "--recalibrate-bn", "2"]
    process = subprocess.run(train_command([*args, "--output", str(tmp_path / "two"),
                                            "--nproc", "2"]),
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr
    saved = torch.load(tmp_path / "two" / "model.pt", weights_only=True)["net"]
    stimuli = json.loads((tmp_path / "two" / "report.json").read_text())["stimuli"]
    assert stimuli == 3840
    trainer = Trainer(str(ini), TrainOptions(test_only=True, seed=5, quiet=True,
                                             output=str(tmp_path / "check")))
    try:
        trainer.net.load_state_dict(saved)
        generator = torch.Generator().manual_seed(5 * 1_000_003 + stimuli)
        recalibrate(trainer.net, [trainer.provider.random_batch("Learn", generator)[0]
                                  for _ in range(2)])
    finally:
        trainer.close()
    for key in ("layers.bn1.running_mean", "layers.bn1.running_var"):
        torch.testing.assert_close(getattr(trainer.net.cells["bn1"], key.split(".")[-1]),
                                   saved[key], rtol=0, atol=0)

def test_batchnorm_ranks_evaluate_the_network_rank_0_saves(tmp_path, mnist_dir,
                                                           monkeypatch):
    # each rank updates BatchNorm running statistics from its own share; evaluation uses
    # rank 0's on every rank, so the reported test accuracy is the saved network's
    data = tmp_path / "data"
    data.mkdir()
    (data / "mnist").symlink_to(mnist_dir.resolve())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "N2D2_DATA": str(data)}
    output = tmp_path / "out"
    process = subprocess.run(train_command([str(ROOT / "networks" / "resnet-mini.ini"),
                                            "-learn", "3072", "-log", "1024", "-seed", "3",
                                            "--quiet", "--output", str(output),
                                            "--nproc", "2"]),
                             capture_output=True, text=True, timeout=300, env=env)
    assert process.returncode == 0, process.stderr
    learnt = json.loads((output / "report.json").read_text())["test_accuracy"]
    monkeypatch.setenv("N2D2_DATA", str(data))
    assert train_main(["-test", str(ROOT / "networks" / "resnet-mini.ini"), "--quiet",
                       "--threads", "1", "--output", str(output)]) == 0
    tested = json.loads((output / "test_report.json").read_text())["test_accuracy"]
    assert tested == learnt > 0.3  # one process, the saved network, the whole test set


def test_nproc_must_be_positive(capsys):
    assert train_main([*ARGS, "--nproc", "0"]) == 2
    assert capsys.readouterr().err == "error: --nproc must be a positive integer, got 0\n"


def test_launcher_reports_the_failing_rank_not_the_peer_that_lost_it(tmp_path):
    """Rank 0 ends first with gloo's 'Connection closed by peer'; rank 1 caused it."""
    import io
    from n2prune.train.launch import launch
    script = ("import os, sys, time\n"
              "if os.environ['RANK'] == '0':\n"
              "    sys.exit('error: [gloo/transport/tcp/pair.cc:553] Connection closed by peer')\n"
              "time.sleep(0.5)\n"
              "sys.exit('error: boom on the third step')\n")
    stderr = io.StringIO()
    assert launch([sys.executable, "-c", script], 2, stderr=stderr) == 2
    assert stderr.getvalue().strip().splitlines()[-1] == "error: rank 1: boom on the third step"
