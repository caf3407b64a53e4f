"""The distillation loss and argument checks of benchmarks/train_cifar10.py (the script trains,
never in CI)."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def train_script():
    spec = importlib.util.spec_from_file_location("train_cifar10", ROOT / "benchmarks" / "train_cifar10.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fixed(logits: torch.Tensor) -> torch.nn.Module:
    """A 'teacher' that returns these logits whatever the input."""
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits
    return Fixed()


def test_weight_zero_is_plain_cross_entropy(train_script):
    torch.manual_seed(0)
    student, teacher, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    ce = F.cross_entropy(student, y)
    assert torch.equal(train_script.distilled(ce, student, _fixed(teacher), None, 0.0, 4.0), ce)


def test_matching_teacher_adds_nothing(train_script):
    torch.manual_seed(1)
    student, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    ce = F.cross_entropy(student, y)
    loss = train_script.distilled(ce, student, _fixed(student.clone()), None, 0.9, 4.0)
    assert loss.item() == pytest.approx(0.1 * ce.item(), abs=1e-6)


def test_gradient_pulls_the_student_toward_the_teacher(train_script):
    torch.manual_seed(2)
    teacher = torch.randn(4, 10) * 3
    student = torch.zeros(4, 10, requires_grad=True)
    y = teacher.argmax(1)
    ce = F.cross_entropy(student, y)
    train_script.distilled(ce, student, _fixed(teacher), None, 1.0, 2.0).backward()
    before = F.kl_div(F.log_softmax(student / 2, 1), F.log_softmax(teacher / 2, 1), log_target=True,
                      reduction="batchmean")
    stepped = student.detach() - 0.1 * student.grad
    after = F.kl_div(F.log_softmax(stepped / 2, 1), F.log_softmax(teacher / 2, 1), log_target=True,
                     reduction="batchmean")
    assert after < before


@pytest.mark.parametrize("flags", [["--distill-weight", "1.5"], ["--distill-temperature", "0"],
                                   ["--compile", "--sample-levels", "1,2,4,8"],
                                   ["--distill-from", "no/such/teacher.pt"], ["--finetune", "missing.pt"]])
def test_bad_distillation_flags_are_refused(train_script, flags):
    with pytest.raises(SystemExit) as exit_info:
        train_script.main(flags)
    assert exit_info.value.code == 2
