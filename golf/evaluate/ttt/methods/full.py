"""The accepted recipe's method: every selected model parameter adapts with the plain mean loss, one optimizer step
per batch, one optimizer for the whole run (momentum carries across chunks). All of it is `Method`'s default."""

from golf.evaluate.ttt.method import Method, register


@register
class Full(Method):
    name = "full"
