import pytest
import yaml

from malaria_cnn.core import params
from malaria_cnn.core.params import ParamsError, from_dict

from conftest import committed_params


def test_the_committed_params_file_is_the_schema_written_out():
    """Each default lives once, in core/params.py; params.yaml is written from it, comments included."""
    assert committed_params() == params.default_file(), "run `python -m malaria_cnn.core.params` and commit"
    assert params.from_dict(yaml.safe_load(committed_params())) == params.Params()


def test_the_written_file_reads_back_as_the_values_it_was_written_from():
    p = params.Params(epochs=3, data=params.DataParams(source="zip", path="my crops/a b.zip", slide_pattern="^(P\\d+)_"),
                      model=params.ModelParams(compact=params.CompactNetParams(widths=(8, 16))),
                      train=params.TrainParams(augment=False, learning_rate=1e-4, mixed_precision=True))
    text = params.render(p, "header")
    assert text.startswith("# header\n\nepochs: 3 ")
    assert "    widths: [8, 16]" in text and '  path: "my crops/a b.zip"' in text
    assert "\n                           # local GPU (or CPU device)" in text  # a help text's second line
    assert params.from_dict(yaml.safe_load(text)) == p


def test_defaults():
    p = params.Params()
    assert p.epochs == 25 and p.train.batch_size == 64 and p.preprocess.image_size == 96
    assert p.data.synthetic.per_class == 500 and p.model.preset == "compact"
    assert p.model.seed.filters == 32 and p.model.seed.dense_units == (512, 256)


def test_partial_params_fill_in_defaults():
    p = from_dict({"epochs": 3, "train": {"optimizer": "sgd"}})
    assert p.epochs == 3 and p.train.optimizer == "sgd" and p.train.batch_size == 64


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"epochs": -1}, "epochs must be an integer >= 1, got -1"),
        ({"patients": {"rule_out": 5}}, "patients.rule_out must be auto or a number with 0 < x < 1, got 5"),
        ({"patients": {"rule_out": "manual"}}, "patients.rule_out must be auto or a number with 0 < x < 1, got 'manual'"),
        ({"epochs": 2.5}, "epochs must be an integer >= 1, got 2.5"),
        ({"epochs": True}, "epochs must be an integer >= 1, got True"),
        ({"train": {"optimizer": "adamx"}}, "train.optimizer must be one of adam, adamw, sgd, rmsprop, got 'adamx'"),
        ({"train": {"distribute": "horovod"}}, "train.distribute must be one of auto, none, mirrored, multi_worker, got 'horovod'"),
        ({"train": {"mixed_precision": "yes"}}, "train.mixed_precision must be auto, true or false, got 'yes'"),
        ({"model": {"preset": "resnet"}}, "model.preset must be one of seed, compact, got 'resnet'"),
        ({"train": {"augment": "yes"}}, "train.augment must be true or false, got 'yes'"),
        ({"preprocess": {"image_size": 0}}, "preprocess.image_size must be an integer >= 8, got 0"),
        ({"data": {"source": "kaggle"}}, "data.source must be one of synthetic, nih, folder, zip, photos, got 'kaggle'"),
        ({"data": {"source": "zip"}}, "data.path must name the zip to read when data.source is zip"),
        ({"data": {"slide_pattern": "C(["}}, "data.slide_pattern must be a valid regular expression (or empty), got 'C(['"),
        ({"data": {"nih": {"sha256": "abc"}}}, "data.nih.sha256 must be 64 hexadecimal digits, got 'abc'"),
        ({"preprocess": {"max_pixels": 0}}, "preprocess.max_pixels must be an integer >= 1, got 0"),
        ({"split": {"test_size": 1.0}}, "split.test_size must be a number with 0 < x < 1, got 1.0"),
        ({"split": {"group_by": "patient"}}, "split.group_by must be one of slide, none, got 'patient'"),
        ({"threshold": {"rule": "precision"}}, "threshold.rule must be one of sensitivity, youden, f1, count, fixed, got 'precision'"),
        ({"threshold": {"min_sensitivity": 1.5}}, "threshold.min_sensitivity must be a number with 0 < x <= 1, got 1.5"),
        ({"evaluate": {"bootstrap": 10}}, "evaluate.bootstrap must be an integer >= 100, got 10"),
        ({"train": {"learning_rate": 0}}, "train.learning_rate must be a number > 0, got 0"),
        ({"model": {"seed": {"dense_units": [512, -1]}}}, "model.seed.dense_units must be a list of integers >= 1, got [512, -1]"),
        ({"train": "fast"}, "train must be a mapping of keys, got 'fast'"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(raw, message):
    with pytest.raises(ParamsError) as err:
        from_dict(raw)
    assert str(err.value) == f"params.yaml: {message}"


def test_misspelt_key_suggests_the_right_one():
    with pytest.raises(ParamsError, match=r"unknown key 'train.optimiser' \(did you mean 'train.optimizer'\?\)"):
        from_dict({"train": {"optimiser": "adam"}})
    with pytest.raises(ParamsError, match=r"unknown key 'epoch' \(did you mean 'epochs'\?\)"):
        from_dict({"epoch": 10})


def test_numbers_in_any_yaml_spelling():
    # YAML 1.1 reads 1e-3 as a string; it is still a learning rate
    assert from_dict({"train": {"learning_rate": "1e-3"}}).train.learning_rate == pytest.approx(0.001)
    with pytest.raises(ParamsError):
        from_dict({"train": {"learning_rate": "fast"}})


def test_file_errors_are_one_line(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        params.load(tmp_path / "params.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("epochs: [1,\n")
    with pytest.raises(ParamsError, match="is not valid YAML at line"):
        params.load(bad)
    bad.write_text("")
    assert params.load(bad) == params.Params()


def test_allowed_names_match_what_the_code_provides():
    from malaria_cnn.training import networks

    assert set(params.PRESETS) == set(networks.PRESETS)
    assert set(params.OPTIMIZERS) == set(networks.OPTIMIZERS)
