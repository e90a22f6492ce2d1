"""Python source made small for a submission's train_gpt.py, with the same behaviour: no docstrings, comments or
blank lines, no annotations on functions and their local variables, one space per indentation level.

Class-level annotations stay (dataclasses and their type hints need them). The source is parsed and printed again
with ast, so what comes out is what Python would run from the original, and is checked to parse."""

from __future__ import annotations

import ast


class _Strip(ast.NodeTransformer):
    def __init__(self) -> None:
        self.in_function = 0

    def _body(self, node: ast.AST) -> None:
        body = getattr(node, "body", None)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]  # a docstring alone: the body still needs a statement

    def visit_Module(self, node: ast.Module) -> ast.AST:
        self._body(node)
        return self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self._body(node)
        depth, self.in_function = self.in_function, 0  # a class body's annotations are fields: kept
        self.generic_visit(node)
        self.in_function = depth
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        self._body(node)
        node.returns = None
        for arg in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg,
                    node.args.kwarg):
            if arg is not None:
                arg.annotation = None
        self.in_function += 1
        self.generic_visit(node)
        self.in_function -= 1
        return node

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if not self.in_function or not isinstance(node.target, ast.Name):
            return node
        if node.value is None:
            return None  # `x: int` inside a function only declares
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def minify(source: str) -> str:
    tree = _Strip().visit(ast.parse(source))
    ast.fix_missing_locations(tree)
    lines = []
    for line in ast.unparse(tree).splitlines():
        if line.strip():
            # ast.unparse indents by 4 and prints every string on one line: leading spaces are only indentation
            stripped = line.lstrip(" ")
            lines.append(" " * ((len(line) - len(stripped)) // 4) + stripped)
    text = "\n".join(lines) + "\n"
    ast.parse(text)
    return text
