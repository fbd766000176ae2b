"""DataDrivenOptimizer: rule-based narrowing of the search space, with a rationale per firing."""
