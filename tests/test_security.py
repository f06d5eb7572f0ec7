"""Model files must not run code when featgen opens them.

Each crafted TorchScript file is first shown to be a live exploit (``torch.jit.load`` writes), then
featgen is asked to open it from the command line, and nothing may be written.
"""

from __future__ import annotations

import pytest
import torch

from featgen.cli import main


class _Exploit(torch.nn.Module):
    """Writes to ``target`` when loaded (``__setstate__`` runs at ``torch.jit.load`` time): fills
    8 bytes of a new file, or overwrites the first 6 bytes of an existing one."""

    def __init__(self, target: str, overwrite: bool):
        super().__init__()
        self.target = target
        self.overwrite = overwrite
        self.w = torch.zeros(1)

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.target, self.overwrite, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool, bool]):
        self.target = state[1]
        self.overwrite = state[2]
        self.training = state[3]
        # kept in an attribute: the TorchScript optimizer drops writes whose result is unused
        if self.overwrite:
            payload = torch.full([6], 88, dtype=torch.uint8)
            self.w = torch.from_file(self.target, shared=True, size=6, dtype=torch.uint8).copy_(payload).float()
        else:
            self.w = torch.from_file(self.target, shared=True, size=8, dtype=torch.uint8).fill_(65).float()


USER_DATA = b"precious user data\n"


def _exploit(tmp_path, kind: str):
    """(model file, victim path, the victim's state before loading): a file shown to write when loaded."""
    victim = tmp_path / ("created.bin" if kind == "create" else "user.txt")
    module = torch.jit.script(_Exploit(str(victim), overwrite=kind == "overwrite"))
    evil = tmp_path / f"{kind}.pt"
    module.save(str(evil))

    def reset():
        victim.unlink(missing_ok=True)
        if kind == "overwrite":
            victim.write_bytes(USER_DATA)

    def state():
        return victim.read_bytes() if victim.exists() else None

    reset()
    before = state()
    torch.jit.load(str(evil))  # proof that the file is a live exploit
    assert state() != before, "the crafted file did not write: the test would prove nothing"
    reset()
    return evil, state, before


@pytest.mark.parametrize("kind", ["create", "overwrite"])
def test_torchscript_exploit_writes_nothing_through_the_cli(tmp_path, capsys, kind):
    evil, state, before = _exploit(tmp_path, kind)
    out = tmp_path / "cam-out"
    for argv in (["layers", f"file:{evil}"], ["cam", f"file:{evil}", "sample:chelsea", "--out", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "TorchScript" in err and "state_dict" in err and "--arch" in err
        assert state() == before
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([evil.name] + ([] if kind == "create" else ["user.txt"]))


def test_state_dict_loads_from_the_cli_with_arch(tmp_path, capsys, device):
    from featgen.backends.torchvision_compat import import_torchvision

    tv = import_torchvision()
    module = tv.models.resnet18(weights=None)
    torch.nn.init.constant_(module.fc.bias, 0.25)
    path = tmp_path / "r18.pth"
    torch.save(module.state_dict(), path)
    assert main(["layers", f"file:{path}"]) == 2
    assert "--arch timm:resnet18" in capsys.readouterr().err
    assert main(["layers", f"file:{path}", "--arch", "torchvision:resnet18", "--json"]) == 0
    import json

    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["layer4"]["shape"] == [7, 7, 512] and rows["fc"]["shape"] == [1000]
    import featgen

    m = featgen.load_model(f"file:{path}", arch="torchvision:resnet18", device=device)
    assert float(m.module.fc.bias.detach().cpu().mean()) == 0.25  # the file's weights, not fresh ones
    assert main(["layers", f"file:{path}", "--arch", "torchvision:resnet1"]) == 2
    assert "resnet18" in capsys.readouterr().err  # suggestion


def test_keras_lambda_layer_is_refused_in_full(tmp_path, capsys):
    keras = pytest.importorskip("keras", reason="the Keras file check needs keras")
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2)(inp))
    path = tmp_path / "lam.keras"
    model.save(path)
    assert main(["layers", f"file:{path}", "--backend", "tensorflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Lambda" in err and err.endswith("and save again.")
