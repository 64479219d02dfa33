"""Many people on one server: accounts, sign-in, each person's limits, and the teacher's view of the class.

Owns: the accounts and their password hashes (`accounts`), signing in with
its limit on failed tries (`signin`), the operator's limits per person
(`quotas`), and what a teacher sees of everyone's runs (`board`). Whose space
a call works in is `tlcore.paths.current_user()`; the app sets it per browser
session, a training process gets it from its environment.

Classroom mode is on as soon as the operator has made an account
(`tlcore users add NAME`); without accounts tlcore is for one person, as before.

May import `tlcore.paths`, `tlcore.errors`, `tlcore.runs` and the standard
library (and argon2-cffi for the hashes). Nothing from training, model or data.
"""
