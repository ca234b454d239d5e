# Stage: data. Raw downloads under resources/ (local rules: compute nodes often lack internet),
# prepared datasets results/data/{name}.npz (float32 NCHW x, int64 y; see sgdvi.data):
#   {dataset}      every key of the config's datasets: (rule prepare_mnist), e.g.
#                  mnist28 (small-lenet, Fig. 1a), mnist7 (small-fc, Fig. 1b),
#                  mnist7-5class (tiny-fc, Fig. 3), mnist7-01-wrap (Fig. 1b, authors' setting)
#   cifar10-zca    CIFAR-10, GCN + ZCA whitening      (small-allcnn, Figs. 2a, 2c)
#   cifar100-zca   CIFAR-100, GCN + ZCA whitening     (small-allcnn, Fig. 2b)

MNIST_RAW = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


rule download_mnist:
    output:
        expand("resources/mnist/{file}", file=MNIST_RAW),
    log:
        "logs/data/download_mnist.log",
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    params:
        sources=config["data"]["mnist"]["sources"],
        local_dir=config["data"]["mnist"]["local_dir"],
        sha256=config["data"]["mnist"]["sha256"],
        timeout=config["data"]["download_timeout"],
    script:
        "../scripts/download_mnist.py"


rule download_cifar:
    output:
        directory("resources/{cifar}"),
    log:
        "logs/data/download_{cifar}.log",
    wildcard_constraints:
        cifar="cifar10|cifar100",
    localrule: True
    conda:
        "../../envs/sgdvi.yaml"
    params:
        sources=config["data"]["cifar"]["sources"],
        local_dir=lambda wildcards: config["data"]["cifar"][
            f"local_dir_{wildcards.cifar}"
        ],
        timeout=config["data"]["download_timeout"],
        verify_md5=config["data"]["cifar"]["verify_md5"],
    script:
        "../scripts/download_cifar.py"


rule prepare_mnist:
    input:
        rules.download_mnist.output,
    output:
        "results/data/{dataset}.npz",
    log:
        "logs/data/prepare_{dataset}.log",
    benchmark:
        "results/benchmarks/data/prepare_{dataset}.tsv"
    wildcard_constraints:
        dataset=MNIST_DATASET_PATTERN,
    conda:
        "../../envs/sgdvi.yaml"
    params:
        options=mnist_dataset_options,
    script:
        "../scripts/prepare_mnist.py"


rule prepare_cifar_zca:
    input:
        "resources/{cifar}",
    output:
        "results/data/{cifar}-zca.npz",
    log:
        "logs/data/prepare_{cifar}-zca.log",
    benchmark:
        "results/benchmarks/data/prepare_{cifar}-zca.tsv"
    wildcard_constraints:
        cifar="cifar10|cifar100",
    conda:
        "../../envs/sgdvi.yaml"
    threads: 2
    resources:
        mem_mb=6000,
    params:
        name="{cifar}",
        eps=config["data"]["cifar"]["zca_epsilon"],
    script:
        "../scripts/prepare_cifar_zca.py"
