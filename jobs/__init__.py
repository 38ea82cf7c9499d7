"""Work that runs at a site, as the portal sees it: the queue of a site (``jobs.queues``), one job lifecycle
(``jobs.models.SiteJob``, ``jobs.lifecycle``) and one state vocabulary (``jobs.choices``) that counts, dataset
projections and extractions share, and enqueueing after commit (``jobs.enqueue``). It knows no app that uses it.
"""
