"""Helpers shared by the test files (fixtures stay in tests/conftest.py).

    paths             ROOT, SHARED_DATA (the few-shot data beside the checkout), STANDIN (the stand-in run command)
    runs              queue_seeds (n seeds of the prompt task), engine_run (a run in a process of its own),
                      kill_at_step (SIGKILL a run at a step and queue its retry)
    waiting           wait_for: poll a condition until it holds, or fail saying what never happened
    cli               pgg (the CLI in process), one_clear_line (a refused command's single error line)
    pilot             settle, table_keys, open_queue_form: driving pgg-tui under Textual's pilot
    seed_store        a store with runs in every state, written directly, for the app tests
    synthetic_scorer  user scorers for the tests, one of them breaking the contract

Test files import them as `from support.X import ...` (pytest puts tests/ on sys.path). tests/standin.py,
tests/pg_server.py and tests/slurm_cluster.py stay beside the tests: benchmarks and docs name those paths.
"""
