"""The run folder, the single source of truth about a run, and the processes that train in it.

Owns: the folder's files and their names (`folder`), the one writer and reader
of status, metrics and the stop file (`record`), locks released when their
holder dies (`locks`, with the machine's training slots), the list of runs
(`history`), starting a tlcore process (`processes`), the spare process waiting
to train (`spare`), the line of runs waiting for a slot (`queue`) and starting
them in turn (`dispatch`), and importing TensorFlow quietly and quickly (`quiet`).

May import: `tlcore.errors`, `tlcore.paths`, the standard library. Nothing from
training, model or data: a spare is given the worker's entry point by its caller.
"""
