"""docs/api.md is what `python -m isnet_keras._api_doc` writes today."""

from isnet_keras import _api_doc


def test_api_doc_is_up_to_date():
    current = _api_doc.API_DOC.read_text()
    assert current == _api_doc.render(), (
        f"{_api_doc.API_DOC} is out of date; regenerate it with: "
        f"{_api_doc.REGENERATE_COMMAND}"
    )


def test_every_public_name_has_an_entry():
    import isnet_keras

    text = _api_doc.API_DOC.read_text()
    for name in _api_doc.top_level_names():
        assert f"### `isnet_keras.{name}`" in text
    assert set(_api_doc.top_level_names()) | set(_api_doc.SUBPACKAGES) == (
        set(isnet_keras.__all__))
    for package in _api_doc.SUBPACKAGES:
        assert f"## `isnet_keras.{package}`" in text
    assert "### `isnet_keras.data.make_zoo_benchmark`" in text
    assert "### `isnet_keras.losses.GWRPHeatmapLoss`" in text


def test_long_signatures_get_one_parameter_per_line():
    def function(first_argument, second, /, third, *, fourth_argument=1,
                 fifth_argument="fifth"):
        """Summary line
        that goes on.

        Details."""

    assert _api_doc.signature_text("function", function) == (
        "function(\n"
        "    first_argument,\n"
        "    second,\n"
        "    /,\n"
        "    third,\n"
        "    *,\n"
        "    fourth_argument=1,\n"
        "    fifth_argument='fifth',\n"
        ")"
    )
    assert _api_doc.summary(function) == "Summary line that goes on."


def test_check_reports_the_command_when_stale(tmp_path, capsys):
    stale = tmp_path / "api.md"
    stale.write_text("# API reference\n")
    assert _api_doc.main(["--check", "--out", str(stale)]) == 1
    assert _api_doc.REGENERATE_COMMAND in capsys.readouterr().err
    assert _api_doc.main(["--out", str(stale)]) == 0
    assert _api_doc.main(["--check", "--out", str(stale)]) == 0
