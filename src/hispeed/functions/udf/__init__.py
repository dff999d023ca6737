"""Python functions in SQL (user functions): the decorators, the type mapping, the calling
conventions, the aggregates and module loading. Users import them from `hispeed.udf`."""
