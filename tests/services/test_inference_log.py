"""The inference log on a SQLAlchemy URL of a real database server: the MariaDB every machine of this
project runs (127.0.0.1:3306, root), as the servers stack writes it."""

import json
import os

import pandas as pd
import sqlalchemy

from headliner.serving.inference_log import InferenceLog, read_inference_log
from tests.helpers.inference_log import FEATURES, record


def test_a_sqlalchemy_url_works_as_on_the_servers_stack_mariadb():
    """The MariaDB every machine of this project runs (127.0.0.1:3306, root): the log the servers
    stack writes, with microsecond timestamps and a batch chunk too big for TEXT."""
    database = f"headliner_test_{os.getpid()}"  # a database of this test session only
    server = sqlalchemy.create_engine("mysql+pymysql://root@127.0.0.1:3306/")
    with server.begin() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {database}")
    url = f"mysql+pymysql://root@127.0.0.1:3306/{database}"
    try:
        log = InferenceLog(url, FEATURES, flush_seconds=60)
        big = record(1, rows=2500)  # about 100 KB of JSON
        for item in (record(0, received_at=1_700_000_000.123456), big):
            log.append(item)
        assert log.flush() == 2 and log.close() == 0
        frame = read_inference_log(url)
        assert frame["request_id"].tolist() == ["req-0", "req-1"]
        assert frame.loc[0, "received_at"] == pd.Timestamp("2023-11-14 22:13:20.123456", tz="UTC")
        assert len(json.loads(frame.loc[1, "inputs"])["data"]) == 2500
    finally:
        with server.begin() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {database}")
        server.dispose()
