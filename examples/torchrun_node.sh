#!/usr/bin/env bash
# One node of a run on several machines. Start it on every node with the same arguments and
# that node's NODE_RANK; node 0's address is MASTER_ADDR. torchrun starts one `fmnist-tui run`
# per GPU; Lightning reads torchrun's variables; global rank 0 alone writes the run folder.
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 GPUS_PER_NODE=8 ./torchrun_node.sh --preset best
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 GPUS_PER_NODE=8 ./torchrun_node.sh --preset best
#
# The runs folder (--runs-dir, $FMNIST_TUI_RUNS_DIR) must be storage every node sees: the other
# nodes read the checkpoints of a --resume and of the final test from it.
set -euo pipefail
: "${NNODES:?set NNODES, the number of machines}"
: "${NODE_RANK:?set NODE_RANK, this machine (0 to NNODES-1)}"
: "${MASTER_ADDR:?set MASTER_ADDR, the address of node 0}"
MASTER_PORT="${MASTER_PORT:-29500}"
GPUS_PER_NODE="${GPUS_PER_NODE:-1}"  # on a CPU machine: processes per node
# shellcheck disable=SC2086  # TORCHRUN and FMNIST_TUI may be commands with arguments
exec ${TORCHRUN:-torchrun} --nnodes "$NNODES" --node-rank "$NODE_RANK" --nproc-per-node "$GPUS_PER_NODE" \
    --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT" \
    --no-python ${FMNIST_TUI:-fmnist-tui} run --set num_nodes="$NNODES" --set devices="$GPUS_PER_NODE" "$@"
