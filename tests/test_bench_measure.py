"""The benchmark's measurement windows: long enough for slow models' closed loops."""

from bench.run import MIN_ANSWERS_PER_CLIENT, measure_seconds


def test_fast_model_keeps_the_asked_seconds():
    assert measure_seconds(10, 64, 1, 80_000) == 10


def test_slow_model_gets_enough_answers_per_client():
    seconds = measure_seconds(10, 16, 1, 14.6)  # inception at 16 clients
    assert seconds > 10
    assert seconds * 14.6 >= MIN_ANSWERS_PER_CLIENT * 16


def test_rows_per_request_count():
    assert measure_seconds(1, 16, 32, 1000) == measure_seconds(1, 16 * 32, 1, 1000)


def test_no_in_process_measure_keeps_the_asked_seconds():
    assert measure_seconds(10, 16, 1, None) == 10
