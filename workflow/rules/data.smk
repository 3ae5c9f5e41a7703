rule export_image:
    output:
        directory(IMAGE_DIR),
    log:
        "results/logs/export_image/{dataset}/{image}.log",
    benchmark:
        "results/benchmarks/export_image/{dataset}/{image}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        source=lambda wildcards: config["datasets"][wildcards.dataset]["source"],
        flags=export_flags,
    shell:
        "dip datasets export {params.source:q} --images={wildcards.image:q} --out {output:q}"
        " {params.flags} --record-failure {log:q} > {log:q} 2>&1"
