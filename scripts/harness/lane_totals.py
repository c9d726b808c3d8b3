"""The test lanes' pytest counts added up (scripts/test_lanes.sh): one closing line, `N passed, N failed, N skipped`,
from the JUnit XML report each lane's pytest wrote."""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def lane_totals(reports: Path) -> dict[str, int]:
    """Passed, failed (failures and errors) and skipped tests over every report in the folder."""
    totals = {"tests": 0, "failed": 0, "skipped": 0}
    for report in sorted(reports.glob("*.xml")):
        for suite in ET.parse(report).getroot().iter("testsuite"):
            totals["tests"] += int(suite.get("tests", 0))
            totals["failed"] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            totals["skipped"] += int(suite.get("skipped", 0))
    return totals


def main() -> int:
    """Print the closing line; exit 1 when no test ran at all."""
    totals = lane_totals(Path(sys.argv[1]))
    passed = totals["tests"] - totals["failed"] - totals["skipped"]
    print(f"{passed} passed, {totals['failed']} failed, {totals['skipped']} skipped")  # noqa: T201 (the result)
    return 0 if totals["tests"] else 1


if __name__ == "__main__":
    sys.exit(main())
