/*
 * Licensed to the Apache Software Foundation (ASF) under one or more
 * contributor license agreements.  See the NOTICE file distributed with
 * this work for additional information regarding copyright ownership.
 * The ASF licenses this file to You under the Apache License, Version 2.0
 * (the "License"); you may not use this file except in compliance with
 * the License.  You may obtain a copy of the License at
 *
 *     http://www.apache.org/licenses/LICENSE-2.0
 *
 * Unless required by applicable law or agreed to in writing, software
 * distributed under the License is distributed on an "AS IS" BASIS,
 * WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 * See the License for the specific language governing permissions and
 * limitations under the License.
 */
package local.radlake.nifi.provenance;

import org.apache.nifi.authorization.Authorizer;
import org.apache.nifi.authorization.user.NiFiUser;
import org.apache.nifi.events.EventReporter;
import org.apache.nifi.provenance.AsyncLineageSubmission;
import org.apache.nifi.provenance.IdentifierLookup;
import org.apache.nifi.provenance.ProvenanceAuthorizableFactory;
import org.apache.nifi.provenance.ProvenanceEventBuilder;
import org.apache.nifi.provenance.ProvenanceEventRecord;
import org.apache.nifi.provenance.ProvenanceEventRepository;
import org.apache.nifi.provenance.ProvenanceRepository;
import org.apache.nifi.provenance.StandardProvenanceEventRecord;
import org.apache.nifi.provenance.lineage.ComputeLineageSubmission;
import org.apache.nifi.provenance.lineage.LineageComputationType;
import org.apache.nifi.provenance.search.Query;
import org.apache.nifi.provenance.search.QueryResult;
import org.apache.nifi.provenance.search.QuerySubmission;
import org.apache.nifi.provenance.search.SearchableField;
import org.apache.nifi.reporting.Severity;

import java.util.Collection;
import java.util.Date;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import static java.util.Collections.emptyList;
import static java.util.Collections.emptySet;
import static java.util.Collections.singleton;

/**
 * A provenance repository that keeps no event: Apache NiFi's own NoOpProvenanceRepository (NIFI-13949, shipped
 * from NiFi 2.10), built for the NiFi version radlake runs. The provider edge's HandleHttpRequest records every
 * request header (the provider's bearer token) and the request URI (which can hold an original Study Instance UID)
 * in the event it reports on receipt; a repository that keeps nothing is the only way that event is not kept.
 */
public class NoOpProvenanceRepository implements ProvenanceRepository {

    @Override
    public void initialize(final EventReporter eventReporter, final Authorizer authorizer,
                           final ProvenanceAuthorizableFactory factory, final IdentifierLookup identifierLookup) {
        eventReporter.reportEvent(Severity.INFO, "Provenance", "Provenance events are not kept (NoOpProvenanceRepository)");
    }

    @Override
    public void close() {
    }

    @Override
    public ProvenanceEventBuilder eventBuilder() {
        return new StandardProvenanceEventRecord.Builder();
    }

    @Override
    public ProvenanceEventRecord getEvent(final long id) {
        return null;
    }

    @Override
    public ProvenanceEventRecord getEvent(final long id, final NiFiUser user) {
        return null;
    }

    @Override
    public List<ProvenanceEventRecord> getEvents(final long firstRecordId, final int maxRecords) {
        return emptyList();
    }

    @Override
    public List<ProvenanceEventRecord> getEvents(final long firstRecordId, final int maxRecords, final NiFiUser user) {
        return emptyList();
    }

    @Override
    public Long getMaxEventId() {
        return 0L;
    }

    @Override
    public void registerEvent(final ProvenanceEventRecord record) {
    }

    @Override
    public void registerEvents(final Iterable<ProvenanceEventRecord> records) {
    }

    @Override
    public ProvenanceEventRepository getProvenanceEventRepository() {
        return this;
    }

    @Override
    public QuerySubmission submitQuery(final Query query, final NiFiUser user) {
        return new NoOpQuerySubmission(query, user.getIdentity());
    }

    @Override
    public List<ProvenanceEventRecord> getLatestCachedEvents(final String componentId, final int eventLimit) {
        return emptyList();
    }

    @Override
    public QuerySubmission retrieveQuerySubmission(final String queryIdentifier, final NiFiUser user) {
        return new NoOpQuerySubmission(new Query(queryIdentifier), user.getIdentity());
    }

    @Override
    public ComputeLineageSubmission submitLineageComputation(final String flowFileUuid, final NiFiUser user) {
        return new NoOpLineageSubmission(LineageComputationType.FLOWFILE_LINEAGE, null, singleton(flowFileUuid), user.getIdentity());
    }

    @Override
    public ComputeLineageSubmission submitLineageComputation(final long eventId, final NiFiUser user) {
        final NoOpLineageSubmission result = new NoOpLineageSubmission(LineageComputationType.FLOWFILE_LINEAGE, eventId, emptySet(), user.getIdentity());
        result.getResult().setError("Could not find event with ID " + eventId);
        return result;
    }

    @Override
    public AsyncLineageSubmission retrieveLineageSubmission(final String lineageIdentifier, final NiFiUser user) {
        return new NoOpLineageSubmission(LineageComputationType.FLOWFILE_LINEAGE, null, emptyList(), user.getIdentity());
    }

    @Override
    public AsyncLineageSubmission submitExpandParents(final long eventId, final NiFiUser user) {
        return new NoOpLineageSubmission(LineageComputationType.EXPAND_PARENTS, null, emptyList(), user.getIdentity());
    }

    @Override
    public AsyncLineageSubmission submitExpandChildren(final long eventId, final NiFiUser user) {
        return new NoOpLineageSubmission(LineageComputationType.EXPAND_CHILDREN, null, emptyList(), user.getIdentity());
    }

    @Override
    public List<SearchableField> getSearchableFields() {
        return emptyList();
    }

    @Override
    public List<SearchableField> getSearchableAttributes() {
        return emptyList();
    }

    @Override
    public Set<String> getContainerNames() {
        return singleton("noOp");
    }

    @Override
    public long getContainerCapacity(final String containerName) {
        return 0;
    }

    @Override
    public String getContainerFileStoreName(final String containerName) {
        return "noOp";
    }

    @Override
    public long getContainerUsableSpace(final String containerName) {
        return 0;
    }

    private static class NoOpLineageSubmission extends AsyncLineageSubmission {
        NoOpLineageSubmission(final LineageComputationType type, final Long eventId, final Collection<String> flowFileUuids,
                              final String submitterId) {
            super(type, eventId, flowFileUuids, 1, submitterId);
        }

        @Override
        public boolean isCanceled() {
            return true;
        }
    }

    private static final QueryResult EMPTY_RESULT = new QueryResult() {
        @Override
        public List<ProvenanceEventRecord> getMatchingEvents() {
            return emptyList();
        }

        @Override
        public long getTotalHitCount() {
            return 0;
        }

        @Override
        public long getQueryTime() {
            return 0;
        }

        @Override
        public Date getExpiration() {
            return new Date(0);
        }

        @Override
        public String getError() {
            return "";
        }

        @Override
        public int getPercentComplete() {
            return 100;
        }

        @Override
        public boolean isFinished() {
            return true;
        }

        @Override
        public boolean awaitCompletion(final long time, final TimeUnit unit) {
            return false;
        }
    };

    private static class NoOpQuerySubmission implements QuerySubmission {
        private final Query query;
        private final String submitterId;
        private final Date submissionTime = new Date();

        NoOpQuerySubmission(final Query query, final String submitterId) {
            this.query = query;
            this.submitterId = submitterId;
        }

        @Override
        public Query getQuery() {
            return query;
        }

        @Override
        public QueryResult getResult() {
            return EMPTY_RESULT;
        }

        @Override
        public Date getSubmissionTime() {
            return submissionTime;
        }

        @Override
        public String getQueryIdentifier() {
            return query.getIdentifier();
        }

        @Override
        public void cancel() {
        }

        @Override
        public boolean isCanceled() {
            return true;
        }

        @Override
        public String getSubmitterIdentity() {
            return submitterId;
        }
    }
}
