"""The search command's options: each is on the command, and each request field has a flag."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
from typer.testing import CliRunner

from retrieval.cli import app
from retrieval.cli.app import CLI_NAMES
from retrieval.search import SearchFilters, SearchRequest

HELP = CliRunner().invoke(app, ["search", "--help"], env={"COLUMNS": "200"}).output
NOT_ON_THE_CLI = {"offset", "filters"}  # paging is the web page's; filters are their own fields


@pytest.mark.parametrize(
    "name",
    [f.name for f in fields(SearchRequest) if f.name not in NOT_ON_THE_CLI]
    + [f.name for f in fields(SearchFilters)],
)
def test_every_request_field_has_its_flag_in_the_help(name: str) -> None:
    flag = CLI_NAMES[name]
    if flag == "QUERY":
        assert re.search(r"\bQUERY\b", HELP)
    else:
        for one in flag.split("/"):
            assert one in HELP, one
