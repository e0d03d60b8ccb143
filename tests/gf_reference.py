"""An independent model of the task for tests: brute force over the field, no ffreason code."""


def forward(ops, x, p):
    for op, c in ops:
        if op == "add":
            x = (x + c) % p
        elif op == "sub":
            x = (x - c) % p
        elif op == "mul":
            x = (x * c) % p
        else:  # div: the y with y * c == x
            x = next(y for y in range(p) if (y * c) % p == x)
    return x


def answer(problem_dict):
    """The answer of a problem given as ``Problem.to_dict()``, by brute force for inversions."""
    p = problem_dict["p"]
    if problem_dict["kind"] == "composition":
        x = problem_dict["given"]
        for part in problem_dict["parts"]:
            x = answer({**part, "given": x, "p": p})
        return x
    ops = [tuple(o) for o in problem_dict["ops"]]
    if problem_dict["kind"] == "evaluation":
        return forward(ops, problem_dict["given"], p)
    matches = [x0 for x0 in range(p) if forward(ops, x0, p) == problem_dict["given"]]
    assert len(matches) == 1
    return matches[0]
