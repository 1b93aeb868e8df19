
import pytest
import torch

from vcm.nerv.sa_loss import sa_nerv_loss, sa_nerv_terms


def test_reference_is_equation_6():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 16, 20)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    m = (torch.rand(2, 1, 16, 20) > 0.5).float()
    l1, s, l1m, sm = sa_nerv_terms(y, x, m)
    beta, w = 0.7, 1.0
    expected = beta * l1 + (1 - beta) * (1 - s) + w * (beta * l1m + (1 - beta) * (1 - sm))
    assert torch.allclose(sa_nerv_loss(y, x, m, beta, w), expected, atol=1e-7)
    assert torch.allclose(l1m, ((y - x).abs() * m).mean(), atol=1e-7)  # masked pixels count as zeros
    assert sa_nerv_loss(x, x, m).item() == pytest.approx(0.0, abs=1e-6)


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def fused():
    # conftest sets TRITON_INTERPRET=1 on machines without CUDA (the kernel then runs on CPU).
    from vcm.nerv.sa_loss_triton import fused_sa_nerv_loss

    return fused_sa_nerv_loss


@pytest.mark.parametrize("shape,mask_kind,beta,weight", [
    ((1, 3, 13, 21), "random", 0.7, 1.0),
    ((2, 3, 13, 35), "random", 0.5, 2.0),  # odd sizes, two tiles wide, batch 2 (two tiles tall: the last case)
    ((1, 3, 11, 11), "zeros", 0.7, 1.0),   # the smallest frame with a whole window
    ((1, 3, 17, 12), "ones", 0.7, 1.0),
])
def test_triton_matches_reference_values_and_gradients(fused, shape, mask_kind, beta, weight):
    torch.manual_seed(sum(shape))
    x = torch.rand(shape)
    y = (x + 0.15 * torch.randn(shape)).clamp(0, 1)
    b, _, h, w = shape
    m = {"random": (torch.rand(b, 1, h, w) > 0.6).float(), "zeros": torch.zeros(b, 1, h, w),
         "ones": torch.ones(b, 1, h, w)}[mask_kind]
    x, m, y = x.to(DEVICE), m.to(DEVICE), y.to(DEVICE).requires_grad_(True)
    got = fused(y, x, m, beta, weight)
    (g_got,) = torch.autograd.grad(got * 3.0, y)  # a non-unit upstream gradient
    ref = sa_nerv_loss(y, x, m, beta, weight)
    (g_ref,) = torch.autograd.grad(ref * 3.0, y)
    assert got.item() == pytest.approx(ref.item(), abs=2e-6)
    assert torch.allclose(g_got, g_ref, atol=1e-7, rtol=1e-4), (g_got - g_ref).abs().max()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_the_fused_loss_runs_on_a_gpu_that_is_not_the_current_one(fused):
    """`--device cuda:1` leaves cuda:0 the current device; Triton launched on the current one and refused the
    tensors of the other ("cannot be accessed from Triton")."""
    device = f"cuda:{torch.cuda.device_count() - 1}"
    torch.manual_seed(3)
    x = torch.rand(2, 3, 24, 40, device=device)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1).requires_grad_(True)
    m = (torch.rand(2, 1, 24, 40, device=device) > 0.5).float()
    got = fused(y, x, m)
    (g_got,) = torch.autograd.grad(got, y)
    ref = sa_nerv_loss(y, x, m)
    (g_ref,) = torch.autograd.grad(ref, y)
    assert torch.cuda.current_device() == 0 and got.device == y.device
    assert got.item() == pytest.approx(ref.item(), abs=2e-6)
    assert torch.allclose(g_got, g_ref, atol=1e-7, rtol=1e-4)


def test_small_frames_go_to_the_reference_through_the_dispatcher(fused):
    from vcm.nerv.sa_loss import sa_nerv_loss_fn

    x = torch.rand(1, 3, 8, 9)
    y = torch.rand(1, 3, 8, 9, requires_grad=True)
    m = torch.ones(1, 1, 8, 9)
    with pytest.raises(ValueError, match="at least"):
        fused(y, x, m)  # the kernel itself refuses; it never calls back into the dispatcher
    loss = sa_nerv_loss_fn(0.7, 1.0, "triton", "cpu")
    assert loss(y, x, m).item() == pytest.approx(sa_nerv_loss(y, x, m).item())


def test_kernel_module_does_not_import_the_dispatcher():
    import ast
    import inspect

    import vcm.nerv.sa_loss_triton as kernel

    imported = {n.module for n in ast.walk(ast.parse(inspect.getsource(kernel))) if isinstance(n, ast.ImportFrom)}
    assert "vcm.nerv.sa_loss" not in imported


@pytest.mark.parametrize("size", [(40, 56), (8, 56)])
def test_the_clip_sa_loss_is_eq6_with_both_targets_statistics_computed_once(size):
    """The SA-NeRV training loss on a clip's frames and masks: eq. (6)'s value and gradient, whether the
    targets' SSIM statistics (of x and of x⊙s) are cached or, for frames under 11×11, not; the masked
    statistics belong to each frame's own mask."""
    from vcm.nerv.sa_loss import sa_nerv_loss_fn

    torch.manual_seed(0)
    frames = (torch.rand(10, 3, *size) * 255).to(torch.uint8)
    masks = (torch.rand(10, 1, *size) > 0.7).to(torch.uint8)
    loss = sa_nerv_loss_fn(0.6, 1.5, "torch", "cpu", clip=(frames, masks))
    idx = torch.tensor([9, 2, 5])
    x = frames[idx].float() / 255
    x_hat = (x + 0.1 * torch.randn_like(x)).clamp(0, 1).requires_grad_()
    ours, reference = loss(x_hat, x, masks[idx], idx), sa_nerv_loss(x_hat, x, masks[idx], 0.6, 1.5)
    assert ours.item() == pytest.approx(reference.item(), abs=1e-7)
    (g_ours,), (g_ref,) = torch.autograd.grad(ours, x_hat), torch.autograd.grad(reference, x_hat)
    assert torch.allclose(g_ours, g_ref, atol=1e-9)
    if min(size) >= 11:  # another frame's masked statistics give another value: they are indexed per frame
        other = masks.clone()
        other[idx] = masks[torch.tensor([0, 1, 3])]
        swapped = sa_nerv_loss_fn(0.6, 1.5, "torch", "cpu", clip=(frames, other))
        assert abs(swapped(x_hat, x, masks[idx], idx).item() - reference.item()) > 1e-4
