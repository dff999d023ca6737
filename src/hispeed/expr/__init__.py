"""The expression layer: type SQL expressions against a scope and compile them into Arrow
evaluators (`compiler.compile_expr`), with the type rules, casts and lambdas they need."""
