"""The golden seeded snapshots of every agent in every style (tests/golden: what they hold and
how to regenerate them). A failure names the agent, the style and the first bar that changed."""
import pytest

from engine.agents import STYLES
from tests.golden import AGENTS, difference


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_snapshot_holds(agent, style):
    diff = difference(agent, style)
    assert diff is None, diff
