-- Finance's decision on a review, through the one function that records it in closeout.decisions.
SELECT closeout_data.resolve_accounting_link_review(%(review_id)s, %(external_id)s, %(decided_by)s, %(reason)s,
                                                    %(ref)s::jsonb)
