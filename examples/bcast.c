/* Moves real data between every node: rank 0 broadcasts 4 MiB, every rank checks it.
 *
 * A message this large is striped over every TCP link Open MPI thinks it has, so a link the
 * nodes cannot really use (a Wi-Fi with client isolation) hangs it: the transports' pinning to
 * the wired network is what makes it run.
 *
 *   mpicc -O2 -o bcast bcast.c && mpirun ./bcast
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#define SIZE (4 << 20)

int main(int argc, char **argv)
{
    int rank, length, bad = 0;
    char host[MPI_MAX_PROCESSOR_NAME];
    unsigned char *data = malloc(SIZE);

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Get_processor_name(host, &length);
    for (int i = 0; i < SIZE; i++)
        data[i] = rank == 0 ? (unsigned char)(i * 7) : 0;
    MPI_Bcast(data, SIZE, MPI_UNSIGNED_CHAR, 0, MPI_COMM_WORLD);
    for (int i = 0; i < SIZE; i++)
        bad += data[i] != (unsigned char)(i * 7);
    printf("rank %d on %s: %s\n", rank, host, bad ? "corrupt" : "received");
    MPI_Finalize();
    free(data);
    return bad != 0;
}
