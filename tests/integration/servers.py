"""Real PostgreSQL, Redis and Kafka (librdkafka's mock cluster) servers for
the integration tests and benchmarks.

Each server runs on a free loopback port in its own temporary directory and
can be stopped and started again on the same port (outage tests). Servers are
removed at the end of the test class that started them and, as a safety net,
when the interpreter exits, so a failing test leaves nothing running.

PostgreSQL runs with fsync=off, synchronous_commit=off and
full_page_writes=off: the tests check what rtproc sends and when it is
acknowledged, not the durability of a throwaway cluster, and these settings
make a test run several times faster. TCP connections need a password
(scram-sha-256) so the tests exercise PGPASSWORD; the unix socket in the
temporary directory trusts the postgres user (used by psql in benchmarks).

When the binaries are missing, start() raises unittest.SkipTest saying which.
"""
import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

PG_BIN = os.environ.get("RTP_PG_BIN", "/usr/lib/postgresql/15/bin")
PG_PASSWORD = "s3cret-pw"
_running = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cleanup_all():
    for server in list(_running):
        server.cleanup()


atexit.register(_cleanup_all)


class Postgres:
    """A PostgreSQL 15 cluster with one database, `rtproc`."""

    def __init__(self):
        for tool in ("initdb", "pg_ctl", "postgres"):
            if not os.access(os.path.join(PG_BIN, tool), os.X_OK):
                raise unittest.SkipTest(f"{PG_BIN}/{tool} missing (Debian package postgresql-15)")
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("psycopg2 missing (Debian package python3-psycopg2)")
        self.root = os.geteuid() == 0
        if self.root:
            try:
                self.pw = pwd.getpwnam("postgres")
            except KeyError:
                raise unittest.SkipTest("running as root but there is no postgres user")
        self.dir = tempfile.mkdtemp(prefix="rtproc-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.dbname = "rtproc"
        self.user = "postgres"
        self.password = PG_PASSWORD
        if self.root:
            os.chown(self.dir, self.pw.pw_uid, self.pw.pw_gid)
        _running.append(self)
        self._initdb()
        self.start()
        self.sql(f"CREATE DATABASE {self.dbname}", db="postgres", autocommit=True)

    def _as_postgres(self, args, **kw):
        if self.root:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, cwd=self.dir, capture_output=True, text=True, **kw)

    def _initdb(self):
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.root:
            os.chown(pwfile, self.pw.pw_uid, self.pw.pw_gid)
        r = self._as_postgres([f"{PG_BIN}/initdb", "-D", self.data, "-U", "postgres", "-E", "UTF8",
                               "--no-locale", "--auth-local=trust", "--auth-host=scram-sha-256",
                               f"--pwfile={pwfile}"])
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 50\nshared_buffers = 128MB\nmax_wal_size = 2GB\n")

    @property
    def conninfo(self):
        """Without the password: rtproc reads it from PGPASSWORD (env())."""
        return f"host=127.0.0.1 port={self.port} dbname={self.dbname} user={self.user}"

    def env(self):
        return {"PGPASSWORD": self.password}

    def start(self):
        r = self._as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "log"),
                               "-w", "-t", "60", "start"])
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}\n{r.stderr}\n{self.log()}")

    def stop(self, mode="fast"):
        r = self._as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])
        if r.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed:\n{r.stdout}\n{r.stderr}")

    def log(self):
        try:
            with open(os.path.join(self.dir, "log")) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def connect(self, db=None):
        import psycopg2
        return psycopg2.connect(host="127.0.0.1", port=self.port, dbname=db or self.dbname,
                                user=self.user, password=self.password)

    def sql(self, query, params=None, db=None, autocommit=False):
        """Runs one statement; returns its rows (or None)."""
        conn = self.connect(db)
        try:
            conn.autocommit = autocommit
            with conn.cursor() as cur:
                cur.execute(query, params)
                rows = cur.fetchall() if cur.description else None
            if not autocommit:
                conn.commit()
            return rows
        finally:
            conn.close()

    def cleanup(self):
        if self in _running:
            _running.remove(self)
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._as_postgres([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop"])
            shutil.rmtree(self.dir, ignore_errors=True)


class Redis:
    """A redis-server. password: requirepass. persist: an append-only file
    (fsync always) so that a restart keeps the data, for outage tests;
    otherwise no persistence at all."""

    def __init__(self, password=None, persist=False):
        self.bin = shutil.which("redis-server")
        if not self.bin:
            raise unittest.SkipTest("redis-server missing (Debian package redis-server)")
        self.dir = tempfile.mkdtemp(prefix="rtproc-redis-")
        self.port = free_port()
        self.password = password
        self.persist = persist
        self.socket = os.path.join(self.dir, "redis.sock")
        self.proc = None
        _running.append(self)
        self.start()

    def start(self):
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
        args = [self.bin, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""] + aof + ["--dir", self.dir, "--unixsocket", self.socket,
                "--unixsocketperm", "700", "--daemonize", "no", "--logfile", os.path.join(self.dir, "log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                c = self.client()
                try:
                    if c.call("PING") == "PONG":
                        return
                finally:
                    c.close()
            except (OSError, RespError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self, db=0):
        return Resp("127.0.0.1", self.port, self.password, db)

    def cleanup(self):
        if self in _running:
            _running.remove(self)
            self.stop()
            shutil.rmtree(self.dir, ignore_errors=True)


class RespError(Exception):
    pass


class Resp:
    """A minimal RESP2 client: independent of rtproc and of hiredis, and of
    python3-redis, which the test machines need not have."""

    def __init__(self, host, port, password=None, db=0):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        if password:
            self.call("AUTH", password)
        if db:
            self.call("SELECT", db)

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RespError(f"bad reply {line!r}")

    def hgetall(self, key):
        flat = self.call("HGETALL", key)
        return dict(zip(flat[0::2], flat[1::2]))


class KafkaMock:
    """tests/kafka/kafka_mock: librdkafka's mock cluster (the real protocol on
    loopback) with `brokers` brokers and topics {name: partitions}. It serves
    until its stdin closes, so even a harness killed by SIGKILL takes it
    along; close() ends it."""

    def __init__(self, path, topics, brokers=3):
        if not os.path.exists(path):
            raise unittest.SkipTest(f"{path} missing (built only with librdkafka-dev)")
        args = [path, "--brokers", str(brokers)]
        for name, parts in topics.items():
            args += ["--topic", f"{name}:{parts}"]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.brokers = self.proc.stdout.readline().strip()
        if not self.brokers:
            self.close()
            raise RuntimeError("kafka_mock printed no bootstrap servers")

    def close(self):
        if self.proc.stdin.closed:
            return
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
