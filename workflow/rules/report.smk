rule render:
    input:
        summary=PATHS.summary,
        traces=PATHS.traces,
    output:
        directory(RENDERED),
    log:
        "results/logs/render/{task}.log",
    benchmark:
        "results/benchmarks/render/{task}.tsv"
    conda:
        "../envs/dip.yaml"
    params:
        tables=lambda wildcards, output: os.path.join(output[0], "tables"),
        figures=lambda wildcards, output: os.path.join(output[0], "figures"),
    shell:
        "dip render {input.summary:q} --traces {input.traces:q} --task {wildcards.task:q}"
        " --tables {params.tables:q} --figures {params.figures:q} > {log:q} 2>&1"


# A render that fails leaves the last good tables and figures in place: it writes into its own folder (RENDERED),
# whose files this job then puts in place.
rule publish:
    input:
        RENDERED,
    output:
        markdown="results/tables/{task}.md",
        latex="results/tables/{task}.tex",
        html=report(
            "results/tables/{task}.html",
            caption="../report/table.rst",
            category="{task}",
            subcategory="Tables",
            labels={"task": "{task}", "content": "PSNR and SSIM per method and level"},
        ),
        psnr=report(
            "results/figures/{task}-psnr.png",
            caption="../report/psnr.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "PSNR per method and level"},
        ),
        cost=report(
            "results/figures/{task}-cost.png",
            caption="../report/cost.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "PSNR against wall seconds"},
        ),
        curves=report(
            "results/figures/{task}-curves.png",
            caption="../report/curves.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "PSNR against iteration"},
        ),
        rules=report(
            "results/figures/{task}-rules.png",
            caption="../report/rules.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "Stopping rules on one fit"},
        ),
        images=report(
            "results/figures/{task}-images.png",
            caption="../report/images.rst",
            category="{task}",
            subcategory="Figures",
            labels={"task": "{task}", "content": "Restored images"},
        ),
    log:
        "results/logs/publish/{task}.log",
    run:
        publish_rendered(input[0], output, log[0])
