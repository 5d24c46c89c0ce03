/* in_csv checkpoints: the byte offset up to which every row has been
 * delivered, for one file identified by device and inode. */
#ifndef RTP_CSV_CHECKPOINT_H
#define RTP_CSV_CHECKPOINT_H

#include <stdint.h>
#include <sys/types.h>

typedef struct csv_checkpoint {
    uint64_t offset;
    uint64_t dev;
    uint64_t ino;
    uint64_t reverse; /* 1: rows from offset to the end are delivered */
} csv_checkpoint;

/* 0 and *ck when path holds a checkpoint; -1 when it does not exist or is
 * unreadable (the file then starts from the beginning). */
int csv_checkpoint_read(const char *path, csv_checkpoint *ck);
/* Written to a temporary file, synced and renamed over path, so a crash
 * leaves the old checkpoint or the new one, never half of one. */
int csv_checkpoint_write(const char *path, const csv_checkpoint *ck);

#endif
