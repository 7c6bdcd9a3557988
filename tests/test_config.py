import pytest

from hib.config import Config, dump_config, load_config, parse_overrides
from hib.errors import ConfigError


def test_defaults_have_a_fixed_seed():
    assert load_config().seed == Config().seed == 1337


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\n  lr: 0.01\ndata:\n  snr_db: [5, 10]\n")
    config = load_config(path, ["train.lr=3e-4", "data.root=/corpus"])
    assert config.train.epochs == 7
    assert config.train.lr == pytest.approx(3e-4)
    assert config.data.snr_db == (5.0, 10.0)
    assert config.data.root == "/corpus"


def test_round_trip_through_yaml(tmp_path):
    config = load_config(None, ["train.epochs=2", "heads.fill=zero"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrr=1", "unknown config key 'train.lrr' (did you mean 'train.lr'?)"),
        ("train.epochs=two", "config key 'train.epochs': expected int"),
        ("data.snr_db=3", "expected a list of 2"),
        ("nonsense", "not of the form key=value"),
        ("train=3", "config section 'train' must be a mapping"),
        ("eval.precision=fp16", "'fp16' is not one of auto, float32, bfloat16"),
    ],
)
def test_bad_keys_and_values_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_parse_overrides_nests():
    assert parse_overrides(["a.b.c=1", "a.d=x"]) == {"a": {"b": {"c": 1}, "d": "x"}}
