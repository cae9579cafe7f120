"""The stacked chapter's architecture ratio: the factorization chapter's timing of the same configuration of
the same architecture is reused (one architecture, one ratio); anything else is timed anew."""
import pandas as pd
import pytest

from lpirc import models, stacked

ARCH = {"width_multiplier": 0.25, "resolution": 128, "classes": 1001}


def _timed(mmacs):
    return pd.DataFrame({"config": ["unfactorized", "last2_r0.5"], "MMACs": [mmacs, 0.9 * mmacs],
                         "latency_ratio": [1.0, 0.9], "ratio_ci_low": [1.0, 0.88], "ratio_ci_high": [1.0, 0.92],
                         "session_ratios": ["[1, 1]", "[0.9, 0.9]"], "file": ["/r/u.tflite", "/r/q.tflite"]})


def test_the_same_configuration_is_reused_and_another_architecture_is_timed_anew(tmp_path, monkeypatch):
    timed_here = []

    def time_configs(arch_spec, configs, out_dir, *, runs, seed):
        timed_here.append(configs)
        return _timed(1.0).assign(config=list(configs), latency_ratio=[1.0, 0.95], ratio_ci_low=[1.0, 0.94],
                                  ratio_ci_high=[1.0, 0.96])
    monkeypatch.setattr(stacked.F, "time_configs", time_configs)
    macs = models.count_macs(models.mobilenet_v1(**ARCH)) / 1e6
    table, p2 = stacked.on_architecture(ARCH, 2, 0.5, tmp_path, runs=3, seed=0, timed=_timed(macs))
    assert not timed_here and list(table.config) == ["unfactorized", "stacked"] and table.latency_ratio[1] == 0.9
    assert p2["pixel2_ms"] == pytest.approx(0.9 * p2["reference_ms"])
    # another architecture's table (other MACs), or one without this configuration: timed here
    for other in (_timed(2 * macs), _timed(macs).assign(config=["unfactorized", "last3_r0.5"])):
        table, _ = stacked.on_architecture(ARCH, 2, 0.5, tmp_path, runs=3, seed=0, timed=other)
        assert table.latency_ratio[1] == 0.95
    assert len(timed_here) == 2
