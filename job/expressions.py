"""Column expressions for `filter` and `derive`: Python syntax over whole columns.

`dep_delay - arr_delay`, `origin + '-' + dest`, `distance > 100 and not cancelled`,
`tailnum.str.startswith('N')`. Names are columns; `and`, `or` and `not` work
element-wise (they become &, | and ~). Nothing else is in scope but a few
numeric helpers, so a typo fails with the list of columns instead of NameError.
"""
from __future__ import annotations

import ast
from typing import Any

import numpy as np
import pandas as pd

HELPERS: dict[str, Any] = {"abs": abs, "round": round, "where": np.where, "isna": pd.isna, "notna": pd.notna}


class _Vectorise(ast.NodeTransformer):
    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        op: ast.operator = ast.BitAnd() if isinstance(node.op, ast.And) else ast.BitOr()
        result = node.values[0]
        for value in node.values[1:]:
            result = ast.BinOp(left=result, op=op, right=value)
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.UnaryOp(op=ast.Invert(), operand=node.operand)
        return node


def compile_expression(expression: str) -> Any:
    """Parse once; raise SyntaxError with the expression on bad input."""
    tree = ast.parse(expression, mode="eval")
    tree = ast.fix_missing_locations(_Vectorise().visit(tree))
    return compile(tree, "<expression>", "eval")


def evaluate(code: Any, frame: pd.DataFrame) -> pd.Series:
    namespace = {"__builtins__": {}, **HELPERS}
    namespace.update({col: frame[col] for col in frame.columns if isinstance(col, str)})
    result = eval(code, namespace)  # noqa: S307 - the pipeline config is trusted code, like `python:` steps
    if not isinstance(result, pd.Series):
        result = pd.Series(result, index=frame.index)
    return result
