rule export_image:
    output:
        "results/{dataset}/images/{image}.png",
    log:
        "results/logs/export_image/{dataset}/{image}.log",
    benchmark:
        "results/benchmarks/export_image/{dataset}/{image}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        source=lambda wildcards: config["datasets"][wildcards.dataset]["source"],
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        flags=export_flags,
    shell:
        "dip datasets export {params.source:q} --images {wildcards.image} --out {params.out_dir}"
        " {params.flags} > {log} 2>&1"
