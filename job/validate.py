"""Validation rules: rows that break a rule are quarantined with the reason.

Rules are checked after the transform steps, on the rows about to be loaded.
`unique` remembers keys across chunks, so a duplicate in a later chunk of the
same run is caught too.
"""
from __future__ import annotations

import pandas as pd

from job import config as c
from job.errors import ConfigError, RejectBudgetExceeded
from job.transform import SeenKeys, StepResult, add_reason, reject_rows


class Rules:
    def __init__(self, rules: list[c.Rule]) -> None:
        self.rules = rules
        self._seen = {i: SeenKeys() for i, r in enumerate(rules) if isinstance(r, c.Unique)}

    def check(self, frame: pd.DataFrame, location: str = "") -> StepResult:
        reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
        for index, rule in enumerate(self.rules):
            for mask, reason in self._failures(index, rule, frame):
                reasons = add_reason(reasons, mask.fillna(False).astype(bool), reason)
        kept, rejects = reject_rows(frame, reasons, location)
        return StepResult(kept, rejects)

    def _failures(self, index: int, rule: c.Rule, frame: pd.DataFrame):
        columns = _columns_of(rule)
        missing = [col for col in columns if col not in frame.columns]
        if missing:
            raise ConfigError(f"validate[{index}]: no column(s) {missing} to check (columns: {list(frame.columns)})")
        if isinstance(rule, c.NotNull):
            for column in rule.not_null:
                yield frame[column].isna(), f"{column} is null"
        elif isinstance(rule, c.Unique):
            repeat = self._seen[index].repeats(frame[rule.unique])
            yield pd.Series(repeat, index=frame.index), f"duplicate {', '.join(rule.unique)}"
        elif isinstance(rule, c.Range):
            spec = rule.range
            values = pd.to_numeric(frame[spec.column], errors="coerce")
            if spec.min is not None:
                yield values < spec.min, f"{spec.column} below {spec.min:g}"
            if spec.max is not None:
                yield values > spec.max, f"{spec.column} above {spec.max:g}"
        elif isinstance(rule, c.AcceptedValues):
            spec = rule.accepted_values
            values = frame[spec.column]
            accepted = {str(v) for v in spec.values}
            yield values.notna() & ~values.astype("string").isin(accepted), f"{spec.column} not one of {sorted(accepted)}"
        elif isinstance(rule, c.Regex):
            spec = rule.regex
            values = frame[spec.column].astype("string")
            matches = values.str.fullmatch(spec.pattern)
            failing = ~matches.fillna(spec.allow_null).astype(bool)
            yield failing, f"{spec.column} does not match {spec.pattern}"


def _columns_of(rule: c.Rule) -> list[str]:
    if isinstance(rule, c.NotNull):
        return list(rule.not_null)
    if isinstance(rule, c.Unique):
        return list(rule.unique)
    return [next(iter(rule.model_dump().values()))["column"]]


def check_budget(budget: c.RejectBudget, rejected: int, read: int, final: bool) -> None:
    """Raise RejectBudgetExceeded once REJECTED is over the budget.

    A count budget can fail as soon as it is crossed; a ratio budget is judged
    on the final totals (an early chunk full of rejects may still end inside it).
    """
    if budget.count is not None and rejected > budget.count:
        raise RejectBudgetExceeded(
            f"{rejected} rows rejected, over the budget of {budget.count}; nothing was committed. "
            "Fix the input or raise reject_budget.count."
        )
    if final and budget.ratio is not None and read and rejected / read > budget.ratio:
        raise RejectBudgetExceeded(
            f"{rejected} of {read} rows rejected ({rejected / read:.2%}), over the budget of {budget.ratio:.2%}; "
            "nothing was committed. Fix the input or raise reject_budget.ratio."
        )
