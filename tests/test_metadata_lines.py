"""A form's lines: grid (engine/metadata/lines.py): the short and the full form, defaults,
and every misfit reported at its file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.metadata import ConfigErrors, load_model
from tests.lines_world import write_lines_config


def config(tmp_path: Path, form: str) -> Path:
    root = write_lines_config(tmp_path / "config")
    (root / "forms" / "estimate.yaml").write_text(form, encoding="utf-8")
    return root


def errors_of(tmp_path: Path, form: str) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load_model(config(tmp_path, form))
    return [str(e).split("estimate.yaml:", 1)[1] for e in caught.value.errors]


def test_the_short_form_finds_the_link_and_default_columns(tmp_path: Path) -> None:
    grid = load_model(config(tmp_path, "form: estimate\nlines: estimate_line\n")).form(
        "estimate").lines
    assert grid is not None
    assert (grid.entity, grid.via, grid.order, grid.min_rows, grid.max_rows) == (
        "estimate_line", "estimate", None, 0, None)
    assert grid.columns == ("product", "quantity", "price", "discount", "line_total",
                            "position")
    assert grid.label.get("zh") == "估价单明细"


def test_the_full_form(tmp_path: Path) -> None:
    model = load_model(write_lines_config(tmp_path / "config"))
    grid = model.form("estimate").lines
    assert grid is not None
    assert (grid.order, grid.max_rows, grid.label.get("en")) == ("position", 20, "Items")
    assert model.form("product").lines is None


@pytest.mark.parametrize(("text", "expected"), [
    ("form: estimate\nlines: estimate_lin\n",
     "2:8: unknown entity 'estimate_lin' (did you mean 'estimate_line'?)"),
    ("form: estimate\nlines: product\n", "2:8: product has no reference field to estimate"),
    ("form: estimate\nlines: estimate\n", "2:8: estimate cannot be its own line item"),
    ("form: estimate\nlines: {entity: estimate_line, via: product}\n",
     "2:37: estimate_line.product is not a reference field to estimate"),
    ("form: estimate\nlines: {entity: estimate_line, columns: [product, qty]}\n",
     "2:51: no field 'qty' of estimate_line"),
    ("form: estimate\nlines: {entity: estimate_line, columns: [estimate]}\n",
     "2:42: 'estimate' links each line to its estimate; it is not a column"),
    ("form: estimate\nlines: {entity: estimate_line, order: position, columns: [position]}\n",
     "2:59: 'position' is the lines' order (their position in the grid); it is not a column"),
    ("form: estimate\nlines: {entity: estimate_line, columns: [price, price]}\n",
     "2:49: column 'price' is already in the grid"),
    ("form: estimate\nlines: {entity: estimate_line, order: price}\n",
     "2:39: the order field must be a stored integer field; estimate_line.price is money"),
    ("form: estimate\nlines: {entity: estimate_line, order: line_total}\n",
     "2:39: the order field must be a stored integer field; estimate_line.line_total is "
     "computed"),
    ("form: estimate\nlines: {entity: estimate_line, min_rows: 5, max_rows: 2}\n",
     "2:42: min_rows 5 is more than max_rows 2"),
    ("form: estimate\nlines: {entity: estimate_line, max_rows: 501}\n",
     "2:42: lines.max_rows: 501 is greater than the maximum of 500"),
    ("form: estimate\nlines: {entity: estimate_line, rows: 3}\n",
     "2:32: lines: unknown key 'rows' (did you mean 'min_rows'?)"),
])
def test_a_grid_that_does_not_fit_is_reported_at_its_place(tmp_path: Path, text: str,
                                                           expected: str) -> None:
    assert expected in errors_of(tmp_path, text)


def test_the_link_must_be_required(tmp_path: Path) -> None:
    root = config(tmp_path, "form: estimate\nlines: estimate_line\n")
    path = root / "entities" / "estimate_line.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "to: estimate, required: true", "to: estimate"), encoding="utf-8")
    with pytest.raises(ConfigErrors) as caught:
        load_model(root)
    assert [str(e).split("estimate.yaml:", 1)[1] for e in caught.value.errors] == [
        "2:8: estimate_line.estimate must be required: a line cannot stand without its "
        "estimate"]
