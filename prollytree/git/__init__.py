"""Git plumbing, in one package: object ids and tree bodies (:mod:`.objects`), the pack
writer (:mod:`.pack`), the in-process index editor (:mod:`.index`) and repository
discovery (:mod:`.repo`). The node map and the mirror trees live with the Git node store
(``prollytree.storage.git``), which uses these."""
