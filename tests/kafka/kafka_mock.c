/* kafka_mock: a Kafka cluster for tests, in one process.
 *
 *   kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...
 *
 * Starts librdkafka's mock cluster (rdkafka_mock.h: the real Kafka protocol
 * over TCP on 127.0.0.1, with consumer groups and offset commits), creates
 * the topics, prints the bootstrap servers as one line on stdout and serves
 * until stdin reaches end of file or SIGTERM/SIGINT arrives. Any client
 * (kcat, python3-confluent-kafka, rtproc) connects to the printed address.
 *
 * Ending on stdin EOF means a test harness that dies (even by SIGKILL) takes
 * the cluster with it: the pipe to our stdin closes. The mock cluster keeps
 * everything in memory and auto-creates unknown topics on first use. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    (void)sig;
    ssize_t n = write(wake_pipe[1], "x", 1); /* async-signal-safe wake-up */
    (void)n;
}

static void usage(void)
{
    fprintf(stderr, "usage: kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...\n");
    exit(2);
}

/* Parses "ticks:6" into name and count; the name is cut in place. */
static int parse_topic(char *spec, int *partitions)
{
    char *colon = strrchr(spec, ':');
    char *end = NULL;
    if (!colon || colon == spec) return -1;
    *colon = '\0';
    long n = strtol(colon + 1, &end, 10);
    if (*end || n < 1 || n > 10000) return -1;
    *partitions = (int)n;
    return 0;
}

/* The mock cluster lives inside an rd_kafka_t; a producer handle that never
 * produces is the lightest one. */
static rd_kafka_t *new_handle(void)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* quiet: the handle has no brokers of its own to connect to */
    if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        exit(1);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        exit(1);
    }
    return rk;
}

/* Blocks until stdin is at EOF (or fails) or a signal wrote to the pipe. */
static void wait_for_end(void)
{
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = wake_pipe[0], .events = POLLIN}};
    char buf[4096];
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents) return;
        if (fds[0].revents) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf); /* input is ignored */
            if (n <= 0 && !(n < 0 && errno == EINTR)) return;
        }
    }
}

int main(int argc, char **argv)
{
    int brokers = 3;
    if (pipe(wake_pipe) < 0) return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rd_kafka_t *rk = new_handle();
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--brokers") != 0; i++) ;
    if (i + 1 < argc) brokers = atoi(argv[i + 1]);
    if (brokers < 1 || brokers > 100) usage();
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot start the mock cluster\n");
        return 1;
    }
    for (i = 1; i < argc; i++) {
        int parts = 0;
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc) {
            i++;
        } else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc) {
            char *spec = argv[++i];
            if (parse_topic(spec, &parts) < 0) usage();
            /* replication 1: the mock keeps one copy however many brokers */
            rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, spec, parts, 1);
            if (err) {
                fprintf(stderr, "kafka_mock: topic %s: %s\n", spec, rd_kafka_err2str(err));
                return 1;
            }
        } else {
            usage();
        }
    }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    wait_for_end();
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
