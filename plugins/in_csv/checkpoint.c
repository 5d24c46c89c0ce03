#include "checkpoint.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int csv_checkpoint_read(const char *path, csv_checkpoint *ck)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    ck->reverse = 0;
    int n = fscanf(f, "offset %" SCNu64 " dev %" SCNu64 " ino %" SCNu64 " reverse %" SCNu64, &ck->offset,
                   &ck->dev, &ck->ino, &ck->reverse);
    fclose(f);
    return n >= 3 ? 0 : -1;
}

int csv_checkpoint_write(const char *path, const csv_checkpoint *ck)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    char text[128];
    int len = snprintf(text, sizeof text, "offset %" PRIu64 " dev %" PRIu64 " ino %" PRIu64 " reverse %" PRIu64 "\n",
                       ck->offset, ck->dev, ck->ino, ck->reverse);
    int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}
